# SOAP::Lite's stub generated from the WSDL (SOAP::Lite->service): it qualifies the operation
# element only and sends its children unqualified.
# usage: perl service.pl WSDL_URL SOAP_VERSION OPERATION [Name=value ...]
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use SOAP::Lite;
use Answer qw(request_data print_answer);

my ($wsdl, $version, $operation, @fields) = @ARGV;
SOAP::Lite->soapversion($version);  # global in SOAP::Lite, set before the stub exists
my $service = SOAP::Lite->service($wsdl);
$service->want_som(1);  # the whole SOAP::SOM, not only the first value
print_answer($service->$operation(request_data($operation, @fields)));
