"""monitor-api's MQTT side (api.md §10–§11): broker tokens, online tracking, the response
router, ad-hoc checks through agents and the internal HTTP API."""
