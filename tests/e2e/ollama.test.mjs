// owl serve through the official `ollama` client: generate and chat (streamed and whole), options,
// the model list and descriptions, embeddings, errors, and a stream the client aborts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Ollama } from "ollama";

const client = new Ollama({ host: process.env.OWL_URL });
const model = (await client.list()).models[0].name;

const metric = async (name) => {
  const text = await (await fetch(`${process.env.OWL_URL}/metrics`)).text();
  return Number(new RegExp(`\n${name} ([0-9.e+]+)`).exec(text)[1]);
};

test("list, show, ps and version", async () => {
  const { models } = await client.list();
  assert.equal(models.length, 1);
  assert.match(models[0].name, /:latest$/);
  assert.equal(models[0].model, models[0].name);
  assert.ok(models[0].size > 0);
  assert.equal(models[0].details.format, "gguf");
  assert.equal(models[0].details.family, "llama");
  assert.ok(models[0].details.parameter_size.length > 0);
  assert.ok(models[0].details.quantization_level.length > 0);
  assert.ok(!Number.isNaN(Date.parse(models[0].modified_at)));

  const shown = await client.show({ model });
  assert.deepEqual(shown.details, models[0].details);
  assert.equal(shown.model_info["general.architecture"], "llama");
  assert.ok(shown.capabilities.includes("completion"));

  const ps = await client.ps();
  assert.equal(ps.models.length, 1);
  assert.equal(ps.models[0].name, model);
  assert.equal(ps.models[0].context_length, 2048);
  assert.ok(ps.models[0].size >= models[0].size);
  assert.ok(Date.parse(ps.models[0].expires_at) > Date.now());

  const { version } = await client.version();
  assert.match(version, /^\d+\.\d+\.\d+$/);
});

test("generate, whole and streamed, gives the same text", async () => {
  const request = { model, prompt: "Once upon a time", options: { num_predict: 12, temperature: 0 } };
  const whole = await client.generate(request);
  assert.equal(whole.done, true);
  assert.ok(["stop", "length"].includes(whole.done_reason));
  assert.ok(whole.eval_count > 0 && whole.eval_count <= 12);
  assert.ok(whole.prompt_eval_count > 0);
  for (const field of ["total_duration", "load_duration", "prompt_eval_duration", "eval_duration"]) {
    assert.equal(typeof whole[field], "number", field);
  }
  let text = "", last = null, parts = 0;
  for await (const part of await client.generate({ ...request, stream: true })) {
    text += part.response;
    last = part;
    parts++;
  }
  assert.ok(parts >= 2);
  assert.equal(last.done, true);
  assert.equal(text, whole.response);
  assert.equal(last.eval_count, whole.eval_count);
});

test("chat, whole and streamed, gives the same message", async () => {
  const request = {
    model, messages: [{ role: "system", content: "You tell stories." }, { role: "user", content: "Tell me a story" }],
    options: { num_predict: 12, temperature: 0 },
  };
  const whole = await client.chat(request);
  assert.equal(whole.message.role, "assistant");
  assert.equal(typeof whole.message.content, "string");
  assert.equal(whole.done, true);
  let text = "", last = null;
  for await (const part of await client.chat({ ...request, stream: true })) {
    assert.equal(part.message.role, "assistant");
    text += part.message.content;
    last = part;
  }
  assert.equal(last.done, true);
  assert.equal(last.done_reason, whole.done_reason);
  assert.equal(text, whole.message.content);
});

test("options: a seed reproduces sampling, num_predict ends with length, stop ends with stop", async () => {
  const sample = async (seed) => (await client.generate({
    model, prompt: "Tell me a story", options: { num_predict: 16, temperature: 0.9, seed },
  })).response;
  const a = await sample(11);
  assert.equal(await sample(11), a, "the same seed gives the same text");
  const others = await Promise.all([12, 13, 14].map(sample));
  assert.ok(others.some((t) => t !== a), "other seeds give other text");

  const short = await client.generate({ model, prompt: "Once upon a time", options: { num_predict: 4, temperature: 0 } });
  assert.equal(short.done_reason, "length");
  assert.equal(short.eval_count, 4);

  const long = (await client.generate({ model, prompt: "Once upon a time", options: { num_predict: 40, temperature: 0 } })).response;
  const words = long.split(" ").filter((w) => w.length > 0);
  const word = words[Math.floor(words.length / 2)];
  const stopped = await client.generate({ model, prompt: "Once upon a time", options: { num_predict: 40, temperature: 0, stop: [word] } });
  assert.equal(stopped.done_reason, "stop");
  assert.equal(stopped.response, long.slice(0, long.indexOf(word)));
});

test("format: JSON when owl constrains the output, or a 400 that names it", async () => {
  try {
    const r = await client.chat({ model, messages: [{ role: "user", content: "A cat as JSON" }], format: "json",
      options: { num_predict: 64, temperature: 0 } });
    if (r.done_reason === "stop") assert.equal(typeof JSON.parse(r.message.content), "object");
  } catch (e) {
    assert.equal(e.status_code, 400);
    assert.match(e.error, /format/);
  }
  await assert.rejects(client.generate({ model, prompt: "x", format: { type: "array", uniqueItems: true } }),
    (e) => e.status_code === 400 && /'format'/.test(e.error) && /uniqueItems/.test(e.error));
});

test("embed and the older embeddings", async () => {
  const input = ["Once upon a time there was a little cat.", "The dog ran to the park."];
  const r = await client.embed({ model, input });
  assert.equal(r.embeddings.length, 2);
  for (const v of r.embeddings) {
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    assert.ok(Math.abs(norm - 1) < 1e-5, `unit length (${norm})`);
  }
  assert.ok(r.prompt_eval_count > 10);
  const legacy = await client.embeddings({ model, prompt: input[0] });
  assert.equal(legacy.embedding.length, r.embeddings[0].length);
  assert.ok(legacy.embedding.every((x, i) => Math.abs(x - r.embeddings[0][i]) < 1e-6));
});

test("errors come back as Ollama's", async () => {
  await assert.rejects(client.generate({ model: "no-such-model", prompt: "x" }),
    (e) => e.name === "ResponseError" && e.status_code === 404 && /no-such-model/.test(e.error));
  await assert.rejects(client.chat({ model, messages: [{ role: "user", content: "x" }], options: { mirostat: 2 } }),
    (e) => e.status_code === 400 && /mirostat/.test(e.error));
  await assert.rejects(client.generate({ model, prompt: "x", options: { num_ctx: 1 << 20 } }),
    (e) => e.status_code === 400 && /num_ctx/.test(e.error));
  await assert.rejects(client.generate({ model, prompt: "word ".repeat(5000) }),
    (e) => e.status_code === 400 && /context/.test(e.error));
  await assert.rejects(client.generate({ model, prompt: "x", images: ["aGVsbG8="] }),
    (e) => e.status_code === 400 && /images/.test(e.error));
});

test("aborting a stream frees its sequence on the server", async () => {
  const before = await metric("owl_generated_tokens_total");
  const stream = await client.generate({ model, prompt: "Once upon a time", stream: true,
    options: { num_predict: 2000, temperature: 1, seed: 3 } });
  let n = 0;
  try {
    for await (const _ of stream) if (++n === 3) stream.abort();
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

test("chat with tools: a conversation with a call and its result, streamed and whole", async () => {
  const tools = [{ type: "function", function: { name: "get_weather", description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }];
  const messages = [
    { role: "user", content: "Weather in Paris?" },
    { role: "assistant", content: "", tool_calls: [{ function: { name: "get_weather", arguments: { city: "Paris" } } }] },
    { role: "tool", content: "18 C and sunny", tool_name: "get_weather" },
  ];
  const whole = await client.chat({ model, messages, tools, stream: false, options: { temperature: 0, num_predict: 12 } });
  assert.equal(whole.done, true);
  assert.equal(typeof whole.message.content, "string");
  assert.ok(whole.message.content.length > 0 || (whole.message.tool_calls ?? []).length > 0);
  let text = "";
  let last = null;
  for await (const part of await client.chat({ model, messages, tools, stream: true, options: { temperature: 0, num_predict: 12 } })) {
    text += part.message.content;
    last = part;
  }
  assert.equal(last.done, true);
  assert.equal(text, whole.message.content, "the same text streamed and whole");
});
