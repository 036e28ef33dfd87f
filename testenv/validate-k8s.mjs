// Validates Kubernetes manifests (a multi-document YAML stream on stdin, as `helm template`
// prints) against the Kubernetes API's OpenAPI schemas shipped in npm `kubernetes-models`
// (and the Prometheus Operator's CRD schemas for ServiceMonitor). A kind without a schema
// here is an error, not a pass. Prints one JSON line per document; exits 1 if any fails.
import { parseAllDocuments } from 'yaml';

const input = await new Promise((resolve) => {
  let s = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (c) => { s += c; });
  process.stdin.on('end', () => resolve(s));
});

function modulePath(apiVersion) {
  if (apiVersion === 'monitoring.coreos.com/v1') {
    return '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
  }
  return `kubernetes-models/${apiVersion}`;
}

let failed = 0;
for (const doc of parseAllDocuments(input)) {
  if (doc.errors.length) {
    failed += 1;
    console.log(JSON.stringify({ ok: false, error: `not YAML: ${doc.errors[0].message}` }));
    continue;
  }
  const obj = doc.toJS();
  if (obj === null || obj === undefined) continue;
  const { apiVersion, kind } = obj;
  const name = obj.metadata?.name;
  let error = null;
  try {
    const mod = await import(modulePath(apiVersion));
    const Model = mod[kind];
    if (typeof Model !== 'function') throw new Error(`no schema for ${apiVersion} ${kind}`);
    new Model(obj).validate();
  } catch (e) {
    error = String(e && e.message ? e.message : e);
  }
  if (error) failed += 1;
  console.log(JSON.stringify({ apiVersion, kind, name, ok: !error, error }));
}
process.exit(failed ? 1 : 0);
