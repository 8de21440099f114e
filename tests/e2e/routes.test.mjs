// Routes through the official `openai` client (owl serve --config tests/e2e/routes.yaml): who
// answered is in the body and the headers, streamed answers match whole ones, a failing upstream
// falls back, sensitive data never goes to a hosted model, a hosted model's log-probabilities are
// relayed, errors keep OpenAI's shape.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";

const client = new OpenAI({ baseURL: `${process.env.OWL_URL}/v1`, apiKey: "unused", maxRetries: 0 });
const ask = (model, content, extra = {}) =>
  client.chat.completions.create({ model, messages: [{ role: "user", content }], max_tokens: 16, temperature: 0, ...extra }).withResponse();

test("every model and route is listed", async () => {
  const ids = (await client.models.list()).data.map((m) => m.id);

  for (const id of ["small", "big", "down", "auto", "trusting", "fb", "hosted_only"]) assert.ok(ids.includes(id), id);
});

test("a cascade says who answered and why", async () => {
  const { data, response } = await ask("trusting", "Once upon a time");
  assert.equal(data.model, "small");
  assert.equal(response.headers.get("x-owl-model"), "small");
  assert.equal(response.headers.get("x-owl-route"), "cascade");
  assert.equal(response.headers.get("x-owl-route-name"), "trusting");
  assert.ok(Number(response.headers.get("x-owl-cost-usd")) >= 0);
  assert.equal(data.choices[0].logprobs, null);
  const auto = await ask("auto", "Once upon a time");
  assert.ok(["small", "big"].includes(auto.data.model));
  assert.equal(auto.response.headers.get("x-owl-route"), auto.data.model === "small" ? "cascade" : "escalated");
});

test("rules pick the model before the cascade", async () => {
  const urgent = await ask("auto", "URGENT: Once upon a time");
  assert.equal(urgent.data.model, "big");
  assert.equal(urgent.response.headers.get("x-owl-route"), "rule");
  const team = await client.chat.completions
    .create({ model: "auto", messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 8 }, { headers: { "X-Team": "research" } })
    .withResponse();
  assert.equal(team.data.model, "big");
  assert.equal(team.response.headers.get("x-owl-route"), "rule");
});

test("a streamed routed answer is the whole one, in chunks", async () => {
  for (const route of ["trusting", "hosted_only"]) {
    const whole = (await ask(route, "The little dog")).data;
    const stream = await client.chat.completions.create({
      model: route, messages: [{ role: "user", content: "The little dog" }], max_tokens: 16, temperature: 0, stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage = null;
    let models = new Set();
    for await (const chunk of stream) {
      models.add(chunk.model);
      if (chunk.usage) usage = chunk.usage;
      text += chunk.choices[0]?.delta?.content ?? "";
    }
    assert.equal(text, whole.choices[0].message.content, route);
    assert.deepEqual([...models], [whole.model]);
    assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
  }
});

test("an unreachable upstream falls back", async () => {
  const { data, response } = await ask("fb", "Once upon a time");
  assert.equal(data.model, "big");
  assert.equal(response.headers.get("x-owl-route"), "fallback");
  assert.ok(Number(response.headers.get("x-owl-cost-usd")) > 0);
});

test("sensitive data never reaches a hosted model", async () => {
  await assert.rejects(ask("hosted_only", "My card is 4111 1111 1111 1111"), (e) => {
    assert.ok(e instanceof OpenAI.PermissionDeniedError, e.constructor.name);
    assert.equal(e.code, "sensitive_data_no_private_model");
    assert.ok(e.message.includes("card"));
    assert.ok(!e.message.includes("4111"));
    return true;
  });
  // The same text on a cascade: the private model answers, no escalation.
  const { data, response } = await ask("auto", "Mail me at jane@example.com, Once upon a time");
  assert.equal(data.model, "small");
  assert.equal(response.headers.get("x-owl-route"), "sensitive");
});

test("errors keep OpenAI's shape", async () => {
  await assert.rejects(ask("nope", "hi"), (e) => e instanceof OpenAI.NotFoundError && e.code === "model_not_found");
  await assert.rejects(ask("down", "hi"), (e) => e.status === 502 && e.code === "upstream_unreachable" && e.message.includes("'down'"));
  await assert.rejects(ask("auto", "hi", { n: 2 }), (e) => e instanceof OpenAI.BadRequestError && e.message.includes("n must be 1"));
  await assert.rejects(ask("big", "hi", { grammar: 'root ::= "a"' }), (e) => e instanceof OpenAI.BadRequestError && e.message.includes("GBNF"));
});

test("a hosted model relays its log-probabilities", async () => {
  // The stand-in upstream serves the same model as `small`: the same tokens and log-probabilities.
  const extra = { logprobs: true, top_logprobs: 2 };
  const hosted = (await ask("big", "Once upon a time", extra)).data.choices[0].logprobs.content;
  const local = (await ask("small", "Once upon a time", extra)).data.choices[0].logprobs.content;
  assert.equal(hosted.length, 16);
  assert.deepEqual(hosted.map((t) => t.token), local.map((t) => t.token));
  hosted.forEach((t, i) => {
    assert.ok(Math.abs(t.logprob - local[i].logprob) < 1e-4, `${t.logprob} vs ${local[i].logprob}`);
    assert.equal(t.top_logprobs.length, 2);
    assert.deepEqual(t.bytes, local[i].bytes);
  });
});
