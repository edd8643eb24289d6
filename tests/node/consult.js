// The Node `soap` client (npm) against ConsultMyCareNet: it reads the WSDL and its XSD, and writes
// the request from the JavaScript object it is given.
// usage: node consult.js WSDL_URL PORT SOAP_VERSION OPERATION JSON_ARGUMENTS  (NODE_PATH: node_modules)
// node-soap writes SOAP 1.1 on any port unless told otherwise (forceSoap12Headers).
// prints the answer (or the fault) as one JSON document.
'use strict';
const soap = require('soap');

async function main() {
  const [wsdl, port, version, operation, json] = process.argv.slice(2);
  const client = await soap.createClientAsync(wsdl, { forceSoap12Headers: version === '1.2' });
  const method = client.ConsultMyCareNet[port][operation];
  try {
    const [result] = await new Promise((resolve, reject) =>
      method(JSON.parse(json), (err, ...rest) => (err ? reject(err) : resolve(rest))));
    process.stdout.write(JSON.stringify({ result, sent: client.lastRequest, headers: client.lastRequestHeaders }));
  } catch (err) {
    const fault = err.root && err.root.Envelope && err.root.Envelope.Body && err.root.Envelope.Body.Fault;
    process.stdout.write(JSON.stringify({ fault: fault || String(err) }));
  }
}

main().catch((err) => { process.stderr.write(String(err && err.stack || err)); process.exit(1); });
