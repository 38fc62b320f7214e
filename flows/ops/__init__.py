"""Operating the lakehouse from Prefect: the events our flows emit, run names, automations (alerts)."""
