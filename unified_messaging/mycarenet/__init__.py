"""The upstream MyCareNet client: transports, STS, WS-Security, GenericInsurability, GenAsync."""
