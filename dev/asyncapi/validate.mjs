// Parses AsyncAPI documents with the official parser (@asyncapi/parser): exit 0 when every
// document parses without an error or a warning, 1 otherwise, printing each diagnostic.
import { resolve } from 'node:path';
import { Parser, fromFile } from '@asyncapi/parser';

const SEVERITY = ['error', 'warning', 'info', 'hint'];
const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await fromFile(parser, resolve(file)).parse();
  for (const d of diagnostics) {
    console.log(`${file}: ${SEVERITY[d.severity]} ${d.code} at /${d.path.join('/')}: ${d.message}`);
  }
  const bad = diagnostics.filter((d) => d.severity <= 1);
  if (document === undefined || bad.length > 0) {
    failed = true;
  } else {
    const channels = document.channels().all().map((c) => c.address());
    console.log(`${file}: valid AsyncAPI ${document.version()}, channels ${channels.join(', ')}`);
  }
}
process.exit(failed ? 1 : 0);
