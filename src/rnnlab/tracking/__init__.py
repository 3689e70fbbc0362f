"""MLflow bookkeeping: where runs go, what each run records, and how it ends."""
