// Streaming throughput and latency of an OpenAI-compatible server: for each concurrency, that
// many clients each stream ROUNDS completions of exactly TOKENS tokens (ignore_eos); prints the
// aggregate generated tokens/s and the p50, mean and p99 time to first token, and how many
// requests failed (an HTTP error, an error event in the stream, a connection closed early: each
// named on stderr). A request that streamed tokens before an error event still counts them
// (one per streamed chunk) and its time to first token. Prints figures, asserts nothing.
//   node serve_bench.mjs --url http://127.0.0.1:8080 [--clients 1,4,16] [--tokens 64] [--requests 16]
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const url = arg("url", "http://127.0.0.1:8080");
const levels = arg("clients", "1,4,16").split(",").map(Number);
const tokens = Number(arg("tokens", 64));
const requests = Number(arg("requests", 16));  // per level, at least one per client

const prompt = (c, i) => `Request ${c}.${i}. Once upon a time, in a small village by the sea, there lived an old ` +
  "fisherman who told stories to the children every evening. One day";

async function one(c, i) {
  const start = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: prompt(c, i), max_tokens: tokens, temperature: 0.8, stream: true, ignore_eos: true,
                           stream_options: { include_usage: true } }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let ttft = null, generated = 0, streamed = 0, buffer = "";
  for await (const part of res.body) {
    buffer += decoder.decode(part, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
      const chunk = JSON.parse(event.slice(6));
      if (chunk.error) {
        // What the server generated before it gave up still took its time: the caller counts it.
        throw Object.assign(new Error(`error event: ${JSON.stringify(chunk.error)}`), { ttft, streamed });
      }
      if (chunk.usage) generated = chunk.usage.completion_tokens;
      if (chunk.choices?.length) {
        streamed += 1;
        if (ttft === null) ttft = performance.now() - start;
      }
    }
  }
  return { ttft, generated };
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

// The first completion of a fresh server: what the first user waits. Reading the model list
// first, as a stream, warms up this client (node's fetch and streams load on first use), not
// the server's model.
for await (const part of (await fetch(`${url}/v1/models`)).body) new TextDecoder().decode(part, { stream: true });
try {
  const first = await one(0, 0);
  console.log(`first request: TTFT ${(first.ttft / 1000).toFixed(3)} s`);
} catch (e) {
  console.log("first request: failed");
  console.error(`serve_bench: the first request: ${e.cause?.message ?? e.message}`);
}
console.log("| clients | requests | tokens | aggregate tokens/s | TTFT p50 (s) | TTFT mean (s) | TTFT p99 (s) | failed |");
console.log("|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const c of levels) {
  const per = Math.max(1, Math.ceil(requests / c));
  const ttfts = [];
  let generated = 0, failed = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: c }, async (_, k) => {
    for (let i = 0; i < per; i++) {
      try {
        const r = await one(c, k * per + i);
        ttfts.push(r.ttft / 1000);
        generated += r.generated;
      } catch (e) {
        failed += 1;
        console.error(`serve_bench: ${c} clients, request ${k * per + i}: ${e.cause?.message ?? e.message}`);
        if (e.ttft != null) {  // an error event after tokens streamed: its tokens and TTFT count
          ttfts.push(e.ttft / 1000);
          generated += e.streamed;
        }
      }
    }
  }));
  const secs = (performance.now() - start) / 1000;
  const mean = ttfts.reduce((a, b) => a + b, 0) / ttfts.length;
  console.log(`| ${c} | ${ttfts.length} | ${generated} | ${(generated / secs).toFixed(1)} | ${pct(ttfts, 50).toFixed(3)} | ` +
              `${mean.toFixed(3)} | ${pct(ttfts, 99).toFixed(3)} | ${failed} |`);
}
