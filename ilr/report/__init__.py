"""Reports: tables and figures from the evaluation outputs."""
