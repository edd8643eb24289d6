# SOAP::Lite the way legacy Perl clients call ConsultMyCareNet: proxy + default_ns, autotype on
# (values go out as xsi:type="xsd:long", "xsd:string", ...).
# usage: perl default_ns.pl ENDPOINT_URL SOAP_VERSION OPERATION [Name=value ...]
# prints one "path<TAB>value" line per answer field (see Answer.pm).
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use SOAP::Lite;
use Answer qw(request_data print_answer);

my ($url, $version, $operation, @fields) = @ARGV;
# the version first: SOAP::Lite's soapversion is global, and a serializer made before it keeps 1.1 prefixes
my $client = SOAP::Lite->soapversion($version)->proxy($url)
    ->default_ns('http://unified-messaging.be/ConsultMyCareNet/');
print_answer($client->call($operation => request_data($operation, @fields)));
