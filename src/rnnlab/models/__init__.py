"""Recurrent networks built from config: init schemes, sequence dropout, the RNN/LSTM/GRU stack."""

from rnnlab.models.custom import SequenceModel
from rnnlab.models.dropout import SequenceDropout
from rnnlab.models.init_schemes import INIT_SCHEMES, init_recurrent_layer
from rnnlab.models.recurrent import HiddenState, ModelOutput, RecurrentNet, build_model

__all__ = [
    "INIT_SCHEMES",
    "HiddenState",
    "ModelOutput",
    "RecurrentNet",
    "SequenceDropout",
    "SequenceModel",
    "build_model",
    "init_recurrent_layer",
]
