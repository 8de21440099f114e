// A bounded load test of owl serve on loopback: CLIENTS concurrent streaming chat clients for
// SECONDS, each checking that every stream is well-formed (a role chunk, content chunks, one
// finish_reason, the usage chunk, [DONE]). Fails on any failed request or malformed stream, and
// when the server's RSS grows more than RSS_GROWTH_MB after the warm-up (a quarter of the run).
//   OWL_URL=http://127.0.0.1:PORT OWL_PID=PID node load_test.mjs [--clients 32] [--seconds 60] [--rss-growth-mb 16]
import { readFileSync } from "node:fs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const clients = arg("clients", 32), seconds = arg("seconds", 60), rssGrowthMb = arg("rss-growth-mb", 16);
const url = process.env.OWL_URL, pid = process.env.OWL_PID;
const rssMb = () => pid ? Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024 : NaN;

const deadline = Date.now() + seconds * 1000;
const stats = { ok: 0, failed: 0, malformed: 0, tokens: 0, errors: [] };
let rssWarm = NaN;
setTimeout(() => { rssWarm = rssMb(); }, seconds * 250);

function fail(kind, message) {
  stats[kind]++;
  if (stats.errors.length < 10) stats.errors.push(message);
}

function checkStream(body) {
  const events = body.split("\n\n");
  if (events.pop() !== "") return "the stream does not end with a blank line";
  const data = events.filter((e) => !e.startsWith(":")).map((e) => {
    if (!e.startsWith("data: ")) throw new Error(`not a data line: ${e.slice(0, 80)}`);
    return e.slice(6);
  });
  if (data.at(-1) !== "[DONE]") return "no [DONE]";
  const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
  if (chunks[0]?.choices?.[0]?.delta?.role !== "assistant") return "no role chunk first";
  const finishes = chunks.filter((c) => c.choices.length && c.choices[0].finish_reason);
  if (finishes.length !== 1) return `${finishes.length} finish_reason chunks`;
  const usage = chunks.at(-1).usage;
  if (!usage || chunks.at(-1).choices.length !== 0) return "no usage chunk last";
  if (chunks.some((c) => c.id !== chunks[0].id)) return "ids differ";
  stats.tokens += usage.completion_tokens;
  return null;
}

async function client(i) {
  let n = 0;
  while (Date.now() < deadline) {
    const body = {
      messages: [{ role: "system", content: "You are a storyteller." }, { role: "user", content: `Story ${i}.${n++}` }],
      max_tokens: 16 + ((i * 7 + n) % 48), temperature: 0.8, stream: true, stream_options: { include_usage: true },
    };
    try {
      const res = await fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "Content-Type": "application/json" },
                                                            body: JSON.stringify(body) });
      const text = await res.text();
      if (res.status !== 200) { fail("failed", `HTTP ${res.status}: ${text.slice(0, 200)}`); continue; }
      const problem = checkStream(text);
      if (problem) fail("malformed", problem); else stats.ok++;
    } catch (e) {
      fail("failed", String(e));
    }
  }
}

const rssStart = rssMb();
const started = Date.now();
await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
const elapsed = (Date.now() - started) / 1000;
const rssEnd = rssMb();
const growth = rssEnd - rssWarm;
console.log(`load: ${clients} clients, ${elapsed.toFixed(1)} s: ${stats.ok} streams ok, ${stats.failed} failed, ` +
            `${stats.malformed} malformed, ${stats.tokens} tokens (${(stats.tokens / elapsed).toFixed(0)} tokens/s)`);
console.log(`load: RSS start ${rssStart.toFixed(1)} MB, after warm-up ${rssWarm.toFixed(1)} MB, end ${rssEnd.toFixed(1)} MB`);
for (const e of stats.errors) console.log(`load: ${e}`);
let ok = stats.failed === 0 && stats.malformed === 0 && stats.ok > 0;
if (pid && !(growth <= rssGrowthMb)) {
  console.log(`load: RSS grew ${growth.toFixed(1)} MB after warm-up (limit ${rssGrowthMb} MB)`);
  ok = false;
}
console.log(ok ? "1 passed, 0 failed" : "0 passed, 1 failed");
process.exit(ok ? 0 : 1);
