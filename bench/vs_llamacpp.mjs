// owl beside llama.cpp on the same machine and the same files, each measurement taken in turn
// (llama.cpp, then owl, ROUNDS times) and reported as medians with owl's ratio. It runs the
// llama.cpp binaries it is given and builds nothing:
//
//   LLAMA_BENCH=.../llama-bench LLAMA_QUANTIZE=.../llama-quantize LLAMA_SERVER=.../llama-server \
//     node bench/vs_llamacpp.mjs
//
// Environment (every part runs only when its llama.cpp binary is given):
//   OWL            owl binary (default build/apps/cli/owl)
//   F16            an F16 GGUF to start from (default: DIR/tl-f16.gguf, made once with owl synth
//                  in the 1.1B llama shape: n_embd 2048, 22 layers, 32 heads, 4 KV heads)
//   DIR            where the quantized files go (default /tmp/owl-vs-llama)
//   ROUNDS         alternations (default 3); THREADS (default 2)
//   TYPES          quantization types (default Q8_0,Q4_0,Q4_K_M)
//   LLAMA_SERVER_ARGS  extra llama-server arguments (e.g. --no-repack where its repacked path fails)
//   PARTS          which parts run (default quantize,bench,serve); without quantize, the files
//                  of an earlier run in DIR are used
// Throughput: pp512 and tg128 (llama-bench / owl bench, -r 1 per round). Quantize: wall time from
// F16 (the files are also compared byte for byte). Serving: the Q4_0 file, 16 slots, seconds from
// start to ready, the first request's time to first token, then bench/serve_bench.mjs at 1, 4 and
// 16 streaming clients.
import { execFile, execFileSync, spawn } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const env = process.env;
const owl = env.OWL ?? join(root, "build/apps/cli/owl");
const dir = env.DIR ?? "/tmp/owl-vs-llama";
const rounds = Number(env.ROUNDS ?? 3);
const threads = String(env.THREADS ?? 2);
const types = (env.TYPES ?? "Q8_0,Q4_0,Q4_K_M").split(",");
const f16 = env.F16 ?? join(dir, "tl-f16.gguf");
const parts = (env.PARTS ?? "quantize,bench,serve").split(",");
const fail = (message) => {
  console.error(`vs_llamacpp: ${message}`);
  process.exit(1);
};
// A wrong path or part is named before anything runs.
for (const p of parts) if (!["quantize", "bench", "serve"].includes(p)) fail(`PARTS: unknown part '${p}' (quantize, bench, serve)`);
for (const [name, path] of [["OWL", owl], ["LLAMA_BENCH", env.LLAMA_BENCH], ["LLAMA_QUANTIZE", env.LLAMA_QUANTIZE], ["LLAMA_SERVER", env.LLAMA_SERVER]]) {
  if (path === undefined) continue;
  try {
    accessSync(path, constants.X_OK);
  } catch {
    fail(`${name}: ${path} is not an executable file`);
  }
}
if (env.F16 !== undefined && !existsSync(env.F16)) fail(`F16: ${env.F16} does not exist`);
if (!(rounds >= 1)) fail(`ROUNDS: ${env.ROUNDS} is not a number of at least 1`);
mkdirSync(dir, { recursive: true });

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x, d = 2) => (x === undefined ? "–" : x.toFixed(d));
// A command's output; one that fails ends the script, naming it, its exit and its last words.
const run = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 1 << 26 });
  } catch (e) {
    const how = e.signal ? `signal ${e.signal}` : `exit ${e.status}`;
    fail(`${cmd} ${args.join(" ")} failed (${how}): ${String(e.stderr ?? e.message).trim().slice(-800)}`);
  }
};
// Wall seconds of one command. A `sync` after it (not timed) puts what it wrote on disk, so the
// next command does not pay for the writeback of this one's output (owl syncs its own output
// before renaming it; llama-quantize leaves it to the kernel).
const timed = (cmd, args) => {
  const start = performance.now();
  run(cmd, args);
  const seconds = (performance.now() - start) / 1000;
  run("sync", []);
  return seconds;
};
const sameBytes = (a, b) => readFileSync(a).equals(readFileSync(b));

console.log(`# ${run(owl, ["--version"]).trim()} beside llama.cpp: ${rounds} rounds, ${threads} threads`);
console.log(`machine: ${run("nproc", []).trim()} cores; ${readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/)?.[1] ?? "?"}`);
// The F16 file feeds quantize and the F16 rows of bench; serving alone needs only the Q4_0 file.
if (!existsSync(f16) && (parts.includes("quantize") || parts.includes("bench"))) {
  console.log(`making ${f16} (owl synth, 1.1B llama shape, F16)`);
  run(owl, ["synth", "--n-embd", "2048", "--n-layer", "22", "--n-head", "32", "--n-head-kv", "4", "--n-ff", "5632",
            "--vocab-from", join(root, "../shared/vocab/ggml-vocab-llama-spm.gguf"), "--type", "f16", "-o", f16]);
}

// ---- quantize ----
const files = { F16: f16 };
if (!parts.includes("quantize")) {
  for (const type of types) {
    const theirs = join(dir, `llama.${type}.gguf`);
    files[type] = existsSync(theirs) ? theirs : join(dir, `owl.${type}.gguf`);
    if (!existsSync(files[type])) throw new Error(`${files[type]} is missing: run the quantize part first`);
  }
} else {
  console.log("\n## quantize from F16 (wall seconds, median)\n");
  console.log("| type | llama-quantize | owl quantize | owl / llama.cpp | same bytes |");
  console.log("|---|---:|---:|---:|---|");
}
for (const type of parts.includes("quantize") ? types : []) {
  const theirs = join(dir, `llama.${type}.gguf`);
  const ours = join(dir, `owl.${type}.gguf`);
  const t = { llama: [], owl: [] };
  for (let r = 0; r < rounds; r++) {
    if (env.LLAMA_QUANTIZE) t.llama.push(timed(env.LLAMA_QUANTIZE, [f16, theirs, type, threads]));
    t.owl.push(timed(owl, ["quantize", f16, ours, type.toLowerCase(), "-t", threads]));
  }
  const l = env.LLAMA_QUANTIZE ? median(t.llama) : undefined;
  const o = median(t.owl);
  const same = env.LLAMA_QUANTIZE ? (sameBytes(theirs, ours) ? "yes" : "NO") : "–";
  console.log(`| ${type} | ${fmt(l)} | ${fmt(o)} | ${l ? fmt(o / l) : "–"} | ${same} |`);
  files[type] = env.LLAMA_QUANTIZE ? theirs : ours;  // users' files: llama-quantize's where there is one
}

// ---- pp512 / tg128 ----
const bench = (cmd, model, p, n) => {
  const sub = cmd === owl ? ["bench"] : [];
  const out = JSON.parse(run(cmd, [...sub, "-m", model, "-p", String(p), "-n", String(n), "-t", threads, "-r", "1", "-o", "json"]));
  return out[0].avg_ts;
};
if (parts.includes("bench")) {
  console.log("\n## throughput (tokens/s, median)\n");
  console.log("| model | test | llama.cpp | owl | owl / llama.cpp |");
  console.log("|---|---|---:|---:|---:|");
}
for (const [type, model] of parts.includes("bench") ? Object.entries(files) : []) {
  for (const [test, p, n] of [["pp512", 512, 0], ["tg128", 0, 128]]) {
    const t = { llama: [], owl: [] };
    for (let r = 0; r < rounds; r++) {
      if (env.LLAMA_BENCH) t.llama.push(bench(env.LLAMA_BENCH, model, p, n));
      t.owl.push(bench(owl, model, p, n));
    }
    const l = env.LLAMA_BENCH ? median(t.llama) : undefined;
    const o = median(t.owl);
    console.log(`| ${type} | ${test} | ${fmt(l, 1)} | ${fmt(o, 1)} | ${l ? fmt(o / l) : "–"} |`);
  }
}
if (parts.includes("bench")) {
  const bw = JSON.parse(run(owl, ["bench", "-m", files.Q4_0 ?? f16, "-p", "0", "-n", "32", "-t", threads, "-r", "1", "--bandwidth", "-o", "json"]));
  console.log(`\nowl's tg32 of ${files.Q4_0 ? "Q4_0" : "F16"} now reads ${fmt(bw[0].bandwidth_share?.[0])} of the memory read bandwidth (owl bench --bandwidth)`);
}

// ---- serving ----
// Servers and clients still running when the script ends (Ctrl-C, an error) are stopped with it.
const servers = new Set();
process.on("exit", () => servers.forEach((c) => c.kill("SIGKILL")));
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(130));
// As run(), without blocking: a signal still reaches this script (and stops the servers) meanwhile.
const runAsync = (cmd, args) => new Promise((resolve) => {
  const child = execFile(cmd, args, { encoding: "utf8", maxBuffer: 1 << 26 }, (error, stdout, stderr) => {
    servers.delete(child);
    if (error) fail(`${cmd} ${args.join(" ")} failed: ${String(stderr || error.message).trim().slice(-800)}`);
    if (stderr) process.stderr.write(stderr);  // the failed requests serve_bench names
    resolve(stdout);
  });
  servers.add(child);
});
async function serve(name, cmd, args, readyOf, port) {
  const started = performance.now();
  const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  servers.add(child);
  child.on("exit", () => servers.delete(child));
  let log = "";
  child.stderr.on("data", (d) => { log += d; });
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited: ${log.slice(-2000)}`);
    if (await readyOf(url, log)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const ready = (performance.now() - started) / 1000;
  const table = await runAsync("node", [join(root, "bench/serve_bench.mjs"), "--url", url, "--clients", "1,4,16", "--tokens", "64", "--requests", "16"]);
  child.kill("SIGTERM");
  await new Promise((r) => child.on("exit", r));
  const rows = Object.fromEntries([...table.matchAll(/^\| (\d+) \| \d+ \| \d+ \| ([\d.]+) \| ([\d.]+) \| [\d.]+ \| [\d.]+ \| (\d+) \|/gm)]
    .map((m) => [m[1], [Number(m[2]), Number(m[3]), Number(m[4])]]));
  const firstMatch = table.match(/first request: TTFT ([\d.]+)/);  // absent when it failed
  const first = firstMatch ? Number(firstMatch[1]) : undefined;
  return { ready, first, rows };
}
const health = async (url) => {
  try {
    return (await fetch(`${url}/health`)).status === 200;
  } catch {
    return false;
  }
};
if (parts.includes("serve") && env.LLAMA_SERVER && files.Q4_0) {
  const runs = { llama: [], owl: [] };
  for (let r = 0; r < rounds; r++) {
    const extra = (env.LLAMA_SERVER_ARGS ?? "").split(" ").filter(Boolean);
    runs.llama.push(await serve("llama-server", env.LLAMA_SERVER,
      ["-m", files.Q4_0, "--port", "18431", "-t", threads, "-np", "16", "-c", String(16 * 1024), ...extra], health, 18431));
    runs.owl.push(await serve("owl serve", owl,
      ["serve", "-m", files.Q4_0, "--port", "18432", "-t", threads, "--parallel", "16", "-c", "1024"],
      async (url, log) => log.includes("ready:"), 18432));
  }
  const med = (who, f) => {
    const xs = runs[who].map(f).filter((x) => x !== undefined);
    return xs.length ? median(xs) : undefined;
  };
  console.log("\n## serving the Q4_0 file, 16 slots, 64 tokens per request (median)\n");
  console.log("| | llama-server | owl serve | owl / llama.cpp |");
  console.log("|---|---:|---:|---:|");
  const row = (label, f, d) => {
    const l = med("llama", f), o = med("owl", f);
    console.log(`| ${label} | ${fmt(l, d)} | ${fmt(o, d)} | ${l === undefined || o === undefined ? "–" : fmt(o / l)} |`);
  };
  row("start to ready, s", (x) => x.ready, 2);
  row("first request's TTFT, s", (x) => x.first, 3);
  for (const c of ["1", "4", "16"]) {
    row(`tokens/s at ${c} client${c === "1" ? "" : "s"}`, (x) => x.rows[c]?.[0], 1);
    row(`TTFT p50 at ${c} client${c === "1" ? "" : "s"}, s`, (x) => x.rows[c]?.[1], 3);
  }
  // Failed requests (left out of the figures above), summed over levels and rounds.
  const failed = (who) => runs[who].reduce((n, x) => n + Object.values(x.rows).reduce((m, r) => m + r[2], 0), 0);
  console.log(`| failed requests, all rounds | ${failed("llama")} | ${failed("owl")} | |`);
}
