// owl serve through the official `openai` client: chat, completion, streaming, logprobs, errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";

const baseURL = `${process.env.OWL_URL}/v1`;
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
const model = (await client.models.list()).data[0].id;

test("models lists the served model", async () => {
  const list = await client.models.list();
  assert.equal(list.data.length, 1);
  assert.equal(list.data[0].object, "model");
  const card = await client.models.retrieve(model);
  assert.equal(card.id, model);
});

test("chat completion", async () => {
  const r = await client.chat.completions.create({
    model, messages: [{ role: "system", content: "You tell stories." }, { role: "user", content: "Once upon a time" }],
    max_tokens: 12, temperature: 0.7, seed: 7,
  });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(typeof r.choices[0].message.content, "string");
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens <= 12);
  const again = await client.chat.completions.create({
    model, messages: [{ role: "system", content: "You tell stories." }, { role: "user", content: "Once upon a time" }],
    max_tokens: 12, temperature: 0.7, seed: 7,
  });
  assert.equal(again.choices[0].message.content, r.choices[0].message.content, "the same seed gives the same text");
  assert.ok(again.usage.prompt_tokens_details.cached_tokens > 0, "the repeated prompt comes from the cache");
});

test("completion with max_completion_tokens, stop and n", async () => {
  const r = await client.completions.create({ model, prompt: "The little dog", max_tokens: 8, n: 2, temperature: 1, stop: ["\n"] });
  assert.equal(r.object, "text_completion");
  assert.equal(r.choices.length, 2);
  for (const c of r.choices) {
    assert.equal(typeof c.text, "string");
    assert.ok(!c.text.includes("\n"));
  }
});

test("streaming chat with usage", async () => {
  const stream = await client.chat.completions.create({
    model, messages: [{ role: "user", content: "Tell me a story" }], max_tokens: 10, temperature: 0,
    stream: true, stream_options: { include_usage: true },
  });
  let text = "", finish = null, usage = null, chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta.content ?? "";
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.ok(chunks >= 3);
  assert.ok(["stop", "length"].includes(finish));
  assert.ok(usage && usage.completion_tokens > 0 && usage.completion_tokens <= 10);
  const whole = await client.chat.completions.create({
    model, messages: [{ role: "user", content: "Tell me a story" }], max_tokens: 10, temperature: 0,
  });
  assert.equal(text, whole.choices[0].message.content);
});

test("streaming completion", async () => {
  const stream = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 6, stream: true });
  let text = "", finish = null;
  for await (const chunk of stream) {
    text += chunk.choices[0].text;
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.ok(finish);
  assert.equal(typeof text, "string");
});

test("chat logprobs", async () => {
  const r = await client.chat.completions.create({
    model, messages: [{ role: "user", content: "Hi" }], max_tokens: 4, logprobs: true, top_logprobs: 3, temperature: 0,
  });
  const content = r.choices[0].logprobs.content;
  assert.ok(content.length > 0);
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-5, "greedy picks the most likely token");
  }
});

test("errors come back as OpenAI errors", async () => {
  await assert.rejects(client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && /no-such-model/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model, messages: [{ role: "user", content: "x" }], temperature: "hot" }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === "temperature");
  await assert.rejects(client.chat.completions.create({ model, messages: [{ role: "user", content: "x" }],
    response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "object", properties: { a: { uniqueItems: true } } } } } }),
    (e) => e.status === 400 && /'uniqueItems'/.test(e.message) && /\/properties\/a\/uniqueItems/.test(e.message));
  await assert.rejects(client.completions.create({ model, prompt: "word ".repeat(5000) }),
    (e) => e.status === 400 && e.code === "context_length_exceeded");
  const res = await fetch(`${baseURL}/chat/completions`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{oops" });
  assert.equal(res.status, 400);
  assert.match((await res.json()).error.message, /JSON/);
  const big = await fetch(`${baseURL}/completions`, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: "a".repeat(2 << 20) }) });
  assert.equal(big.status, 413);
});

const metric = async (name) => {
  const text = await (await fetch(`${process.env.OWL_URL}/metrics`)).text();
  return Number(new RegExp(`\n${name} ([0-9.e+]+)`).exec(text)[1]);
};

test("aborting a stream cancels it on the server", async () => {
  const before = await metric("owl_generated_tokens_total");
  const controller = new AbortController();
  const stream = await client.chat.completions.create({
    model, messages: [{ role: "user", content: "A long story" }], max_tokens: 2000, stream: true, ignore_eos: true,
  }, { signal: controller.signal });
  let n = 0;
  try {
    for await (const _ of stream) if (++n === 3) controller.abort();
  } catch (e) {
    assert.equal(e.name, "AbortError");
  }
  let running = -1;
  for (let i = 0; i < 100 && running !== 0; i++) {
    running = await metric("owl_running_sequences");
    if (running !== 0) await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(running, 0);
  const generated = (await metric("owl_generated_tokens_total")) - before;
  assert.ok(generated < 1500, `the server stopped early (${generated} tokens generated of 2000)`);
});

test("embeddings, as base64 (the client's default) and as floats", async () => {
  const input = ["Once upon a time there was a little cat.", "The dog ran to the park."];
  const packed = await client.embeddings.create({ model, input });
  assert.equal(packed.data.length, 2);
  const floats = await client.embeddings.create({ model, input, encoding_format: "float" });
  for (let i = 0; i < 2; i++) {
    const a = packed.data[i].embedding, b = floats.data[i].embedding;
    assert.equal(a.length, b.length);
    assert.ok(a.every((v, k) => Math.abs(v - b[k]) < 1e-6), "base64 and float give the same vector");
    const norm = Math.sqrt(b.reduce((s, v) => s + v * v, 0));
    assert.ok(Math.abs(norm - 1) < 1e-5, `unit length (${norm})`);
  }
  assert.ok(floats.usage.prompt_tokens > 10);
});
