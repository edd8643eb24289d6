# What both client idioms share: the request as SOAP::Data (autotyped), the answer as lines.
package Answer;
use strict;
use warnings;
use Exporter 'import';
use Encode qw(decode);
use SOAP::Lite;
our @EXPORT_OK = qw(request_data print_answer);

# Echo message=... ; GetInsurability Nihii=... Quality=... Ssin=... PeriodStart=... (any order);
# a value "~undef" sends the element as Perl's undef (SOAP::Lite writes it xsi:nil="true")
sub request_data {
    my ($operation, @fields) = @_;
    my %f = map { split /=/, decode('UTF-8', $_), 2 } @fields;  # text, as a Perl program holds it
    return SOAP::Data->name(message => $f{message}) if $operation eq 'Echo';
    my @provider = map { SOAP::Data->name($_ => delete $f{$_}) } qw(Nihii Quality);
    my @request = (SOAP::Data->name(CareProvider => \SOAP::Data->value(@provider)));
    for my $name (qw(Ssin Mutuality RegistrationNumber PeriodStart PeriodEnd ContactType RequestType Reference)) {
        next unless defined $f{$name};
        push @request, SOAP::Data->name($name => $f{$name} eq '~undef' ? undef : $f{$name});
    }
    return SOAP::Data->name(request => \SOAP::Data->value(@request));
}

sub print_answer {
    my ($som) = @_;
    binmode STDOUT, ':encoding(UTF-8)';
    if ($som->fault) {
        # SOAP::SOM reads SOAP 1.1 faults only: a SOAP 1.2 one has Code/Value and Reason/Text
        my $code = $som->faultcode // $som->valueof('//Fault/Code/Value');
        my $text = $som->faultstring // $som->valueof('//Fault/Reason/Text');
        print "faultcode\t$code\nfaultstring\t$text\n";
        return;
    }
    my $result = '//GetInsurabilityResult';
    for my $path (qw(Status Reference AuditReference Patient/Ssin Patient/LastName
                     Insurabilities/Insurability/Mutuality Messages/Message/Code Messages/Message/Text)) {
        my $value = $som->valueof("$result/$path");
        print "$path\t$value\n" if defined $value;
    }
    my $echo = $som->valueof('//EchoResponse/EchoResult');
    print "EchoResult\t$echo\n" if defined $echo;
}

1;
