// Validates Kubernetes manifests (a multi-document YAML file, e.g. `helm template` output)
// against the API schemas that the kubernetes-models packages ship: Kubernetes itself, the
// Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule) and the Gateway API's (HTTPRoute).
// Offline: the schemas are compiled into the packages. Types, required fields, enums and
// formats are checked; unknown fields are not (the CRD schemas do not forbid them), which
// tests/e2e/chart.rs covers for the Kubernetes kinds with kubernetes-validate --strict.
//
//   node validate-manifests.mjs FILE
//
// Prints one JSON line per document: {"kind","name","ok","errors"}. Exits 1 when any document
// fails or has a kind none of the packages knows (never skipped), 2 on unreadable input.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const PACKAGES = ["kubernetes-models", "@kubernetes-models/prometheus-operator", "@kubernetes-models/gateway-api"];

/** The model class for apiVersion/kind, from the first package that has it. */
async function model(apiVersion, kind) {
  for (const pkg of PACKAGES) {
    try {
      const group = await import(`${pkg}/${apiVersion}`);
      if (typeof group[kind] === "function") return group[kind];
    } catch {
      // Not this package's API group.
    }
  }
  return null;
}

const file = process.argv[2];
let documents;
try {
  documents = parseAllDocuments(readFileSync(file, "utf8"));
} catch (error) {
  console.error(`cannot read ${file}: ${error.message}`);
  process.exit(2);
}
let failed = false;
for (const document of documents) {
  if (document.errors.length > 0) {
    console.log(JSON.stringify({ ok: false, errors: document.errors.map((e) => e.message) }));
    failed = true;
    continue;
  }
  const object = document.toJS();
  if (object === null || object === undefined) continue; // an empty document
  const { apiVersion, kind } = object;
  const name = object.metadata?.name;
  const Model = apiVersion && kind ? await model(apiVersion, kind) : null;
  if (!Model) {
    console.log(JSON.stringify({ kind, name, ok: false, errors: [`no schema for ${apiVersion} ${kind}`] }));
    failed = true;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(JSON.stringify({ kind, name, ok: true }));
  } catch (error) {
    const errors = error.errors?.map((e) => `${e.instancePath || "/"} ${e.message}`) ?? [String(error.message)];
    console.log(JSON.stringify({ kind, name, ok: false, errors }));
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
