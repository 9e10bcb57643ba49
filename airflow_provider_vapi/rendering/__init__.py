"""Data is never code: where the provider renders templates, and which ``{{ }}`` are Airflow's.

:mod:`.gate` (the one rendering gate every operator and sensor goes through, mapped or not),
:mod:`.templating` (Airflow's ``{{ }}`` told from Vapi's LiquidJS placeholders).
"""
