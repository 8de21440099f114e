// deploy/kubernetes: every object validates against the Kubernetes API schemas (kubernetes-models,
// offline), probes point at /health, the gateway's owl.yaml is a config owl serve starts with, and
// it finds the nodes through their headless service.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";

const dir = join(process.env.OWL_SOURCE, "deploy/kubernetes");

function objects() {
  const out = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".yaml")).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, file), "utf8"))) {
      assert.deepEqual(doc.errors, [], file);
      out.push({ file, object: doc.toJS() });
    }
  }
  return out;
}

// The kubernetes-models class of an object: core/v1 for "v1", else GROUP/VERSION.
async function model(object) {
  const [group, version] = object.apiVersion.includes("/") ? object.apiVersion.split("/") : [null, object.apiVersion];
  const module = await import(group ? `kubernetes-models/${group}/${version}/${object.kind}` : `kubernetes-models/${version}/${object.kind}`);
  return module[object.kind] ?? module.default;
}

test("every manifest validates against the Kubernetes schemas", async () => {
  const all = objects();
  const kinds = all.map((o) => o.object.kind).sort();
  for (const kind of ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "StatefulSet"]) {
    assert.ok(kinds.includes(kind), `a ${kind}`);
  }
  for (const { file, object } of all) {
    const Model = await model(object);
    assert.ok(Model, `${file}: ${object.apiVersion} ${object.kind} is a Kubernetes kind`);
    assert.doesNotThrow(() => new Model(object).validate(), `${file}: ${object.kind} ${object.metadata.name}`);
  }
  // A broken object does not pass: the check can fail.
  const statefulset = all.find((o) => o.object.kind === "StatefulSet").object;
  const Broken = await model(statefulset);
  assert.throws(() => new Broken({ ...statefulset, spec: { ...statefulset.spec, replicas: "two" } }).validate());
});

test("owl's containers are probed on /health and the gateway finds the node pods", () => {
  const all = objects().map((o) => o.object);
  const workloads = all.filter((o) => o.kind === "Deployment" || o.kind === "StatefulSet");
  for (const w of workloads) {
    for (const c of w.spec.template.spec.containers.filter((c) => c.image.startsWith("owl"))) {
      assert.equal(c.readinessProbe.httpGet.path, "/health", `${w.metadata.name} readiness`);
      assert.ok(c.resources.requests.memory && c.resources.limits.memory, `${w.metadata.name} memory`);
      assert.equal(c.args[0], "serve");
    }
  }
  const nodes = all.find((o) => o.kind === "StatefulSet");
  const service = all.find((o) => o.kind === "Service" && o.metadata.name === nodes.spec.serviceName);
  assert.equal(service.spec.clusterIP, "None", "the nodes' service is headless");
  const config = all.find((o) => o.kind === "ConfigMap").data["owl.yaml"];
  assert.ok(config.includes(`nodes_dns: http://${service.metadata.name}:8080`), "the gateway resolves the nodes' service");
  const gateway = all.find((o) => o.kind === "Deployment" && o.metadata.name === "owl-gateway");
  const redis = all.find((o) => o.kind === "Service" && o.metadata.name === "owl-redis");
  assert.ok(gateway.spec.template.spec.containers[0].args.join(" ").includes(`--redis redis://${redis.metadata.name}:6379`));
  const hpa = all.find((o) => o.kind === "HorizontalPodAutoscaler");
  assert.ok(workloads.some((w) => w.kind === hpa.spec.scaleTargetRef.kind && w.metadata.name === hpa.spec.scaleTargetRef.name));
});

test("the gateway's owl.yaml is a config owl serve starts with", async () => {
  const config = objects().find((o) => o.object.kind === "ConfigMap").object.data["owl.yaml"];
  const tmp = mkdtempSync(join(tmpdir(), "owl-deploy-"));
  try {
    writeFileSync(join(tmp, "owl.yaml"), config);
    const owl = spawn(process.env.OWL_BIN, ["serve", "--config", join(tmp, "owl.yaml"), "--port", "0"], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    const ready = await new Promise((resolve) => {
      owl.stderr.on("data", (d) => {
        log += d.toString();
        if (log.includes("ready")) resolve(true);
      });
      owl.on("exit", () => resolve(false));
    });
    owl.kill("SIGKILL");
    assert.ok(ready, log);
    assert.match(log, /'tinyllama' \(\d+ nodes at http:\/\/owl-node:8080\)/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
