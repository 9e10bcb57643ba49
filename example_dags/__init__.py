"""Example DAGs of airflow-provider-vapi, and ``python -m example_dags.demo`` (``make demo``).

Copy the DAG files (``vapi_*.py``), ``vapi_example_support.py`` and ``data/`` into your DAGs folder
to use them; this ``__init__`` only lets the demo run as a module from the repository.
"""
