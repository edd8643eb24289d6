"""The legacy SOAP front: ConsultMyCareNet served with Spyne, its contract served verbatim from wsdl/."""
