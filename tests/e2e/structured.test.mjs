// Structured output through the official `openai` client: every answer to a json_schema
// request validates against its schema (ajv, with ajv-formats), streamed or not, at any
// temperature; schemas owl cannot enforce are refused with the keyword's pointer.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const baseURL = `${process.env.OWL_URL}/v1`;
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
const model = (await client.models.list()).data[0].id;
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);

const schemas = {
  person: {
    type: "object",
    properties: {
      name: { type: "string", minLength: 1, maxLength: 16 },
      age: { type: "integer", minimum: 0, maximum: 120 },
      email: { type: "string", format: "email" },
      role: { enum: ["admin", "user", "guest"] },
      tags: { type: "array", items: { type: "string", maxLength: 8 }, maxItems: 3 },
    },
    required: ["name", "age", "role"],
    additionalProperties: false,
  },
  invoice: {
    type: "object",
    properties: {
      id: { type: "string", pattern: "^INV-[0-9]{4}$" },
      date: { type: "string", format: "date" },
      paid: { type: "boolean" },
      lines: {
        type: "array", minItems: 1, maxItems: 3,
        items: { type: "object", properties: { sku: { type: "string", format: "uuid" }, qty: { type: "integer", minimum: 1, maximum: 99 } },
                 required: ["sku", "qty"], additionalProperties: false },
      },
      note: { type: ["string", "null"], maxLength: 12 },
    },
    required: ["id", "date", "paid", "lines"],
    additionalProperties: false,
  },
  tree: {
    $defs: {
      node: {
        type: "object",
        properties: { label: { type: "string", maxLength: 6 }, children: { type: "array", items: { $ref: "#/$defs/node" }, maxItems: 2 } },
        required: ["label"], additionalProperties: false,
      },
    },
    $ref: "#/$defs/node",
  },
  choice: {
    anyOf: [
      { type: "object", properties: { kind: { const: "point" }, x: { type: "integer" }, y: { type: "integer" } }, required: ["kind", "x", "y"], additionalProperties: false },
      { type: "object", properties: { kind: { const: "ip" }, addr: { type: "string", format: "ipv4" }, at: { type: "string", format: "date-time" } }, required: ["kind", "addr", "at"], additionalProperties: false },
    ],
  },
  extra: {
    type: "object",
    properties: { id: { type: "integer" } },
    required: ["id"],
    additionalProperties: { type: "string", maxLength: 6 },
  },
};

const format = (name) => ({ type: "json_schema", json_schema: { name, strict: true, schema: schemas[name] } });

for (const name of Object.keys(schemas)) {
  test(`json_schema '${name}': every answer validates`, async () => {
    const validate = ajv.compile(schemas[name]);
    for (const [temperature, seed] of [[0, 1], [1, 2], [1, 3], [1.5, 4]]) {
      const r = await client.chat.completions.create({
        model, messages: [{ role: "user", content: `Write a ${name}.` }], max_tokens: 400, temperature, seed,
        response_format: format(name),
      });
      const choice = r.choices[0];
      // Every schema but 'extra' bounds its answer's length (its other keys are unbounded in number).
      if (name === "extra" && choice.finish_reason === "length") continue;
      assert.equal(choice.finish_reason, "stop", `${name} seed ${seed}: ${choice.message.content}`);
      const doc = JSON.parse(choice.message.content);
      assert.ok(validate(doc), `${name} seed ${seed}: ${choice.message.content}\n${JSON.stringify(validate.errors)}`);
    }
  });
}

test("streamed and completions answers validate too, and match the unstreamed text", async () => {
  const validate = ajv.compile(schemas.invoice);
  const body = { model, messages: [{ role: "user", content: "An invoice" }], max_tokens: 400, temperature: 1, seed: 11, response_format: format("invoice") };
  const whole = await client.chat.completions.create(body);
  let text = "";
  for await (const chunk of await client.chat.completions.create({ ...body, stream: true })) text += chunk.choices[0]?.delta?.content ?? "";
  assert.equal(text, whole.choices[0].message.content);
  assert.ok(validate(JSON.parse(text)), text);
  const c = await client.completions.create({ model, prompt: "Invoice:", max_tokens: 400, temperature: 1, seed: 5,
    response_format: format("invoice") });
  assert.equal(c.choices[0].finish_reason, "stop");
  assert.ok(validate(JSON.parse(c.choices[0].text)), c.choices[0].text);
});

test("json_object and llama.cpp's json_schema and grammar fields", async () => {
  // The tiny model writes on inside strings; a bias towards the closing characters ends the object.
  const ids = async (content) => (await (await fetch(`${process.env.OWL_URL}/tokenize`, { method: "POST",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ content, add_special: false }) })).json()).tokens;
  const logit_bias = {};
  for (const t of [...await ids("\""), ...await ids("}")]) logit_bias[t] = 8;
  const o = await client.chat.completions.create({ model, messages: [{ role: "user", content: "JSON please" }], max_tokens: 200,
    temperature: 1, seed: 3, logit_bias, response_format: { type: "json_object" } });
  assert.equal(o.choices[0].finish_reason, "stop", o.choices[0].message.content);
  const v = JSON.parse(o.choices[0].message.content);
  assert.equal(typeof v, "object");
  assert.ok(!Array.isArray(v) && v !== null);
  const res = await fetch(`${baseURL}/completions`, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: "Answer:", max_tokens: 8, temperature: 1, seed: 9, grammar: 'root ::= ("yes" | "no") "."' }) });
  assert.equal(res.status, 200);
  assert.match((await res.json()).choices[0].text, /^(yes|no)\.$/);
  const js = await fetch(`${baseURL}/completions`, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: "Number:", max_tokens: 8, temperature: 1, seed: 9, json_schema: { type: "integer", minimum: 10, maximum: 20 } }) });
  const n = JSON.parse((await js.json()).choices[0].text);
  assert.ok(Number.isInteger(n) && n >= 10 && n <= 20, String(n));
});

test("max_tokens cuts a constrained answer with finish_reason length", async () => {
  const r = await client.chat.completions.create({ model, messages: [{ role: "user", content: "x" }], max_tokens: 3, temperature: 0,
    response_format: format("invoice") });
  assert.equal(r.choices[0].finish_reason, "length");
});

test("schemas owl cannot enforce are refused, naming the keyword and its pointer", async () => {
  for (const [schema, pattern] of [
    [{ type: "object", properties: { a: { type: "array", uniqueItems: true } } }, /'uniqueItems' at \/properties\/a\/uniqueItems/],
    [{ type: "string", format: "hostname" }, /format "hostname"/],
    [{ type: "object", properties: { a: { not: {} } } }, /'not' at \/properties\/a\/not/],
  ]) {
    await assert.rejects(client.chat.completions.create({ model, messages: [{ role: "user", content: "x" }],
      response_format: { type: "json_schema", json_schema: { name: "x", schema } } }),
      (e) => e.status === 400 && e.param === "response_format.json_schema.schema" && pattern.test(e.message));
  }
});

const tools = [
  { type: "function", function: { name: "get_weather", description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string", maxLength: 20 }, unit: { enum: ["c", "f"] } }, required: ["city", "unit"], additionalProperties: false } } },
  { type: "function", function: { name: "add", description: "Adds two integers",
    parameters: { type: "object", properties: { a: { type: "integer", minimum: -1000, maximum: 1000 }, b: { type: "integer", minimum: -1000, maximum: 1000 } }, required: ["a", "b"], additionalProperties: false } } },
];
const validators = Object.fromEntries(tools.map((t) => [t.function.name, ajv.compile(t.function.parameters)]));
const checkCall = (call) => {
  assert.equal(call.type, "function");
  assert.match(call.id, /^call_[A-Za-z0-9]{24}$/);
  const validate = validators[call.function.name];
  assert.ok(validate, call.function.name);
  assert.ok(validate(JSON.parse(call.function.arguments)), call.function.arguments);
};

test("tool calls round-trip through the openai client", async () => {
  const messages = [{ role: "user", content: "What is the weather in Paris?" }];
  const first = await client.chat.completions.create({ model, messages, tools, temperature: 1, seed: 5, max_tokens: 200,
    tool_choice: { type: "function", function: { name: "get_weather" } } });
  const choice = first.choices[0];
  assert.equal(choice.finish_reason, "tool_calls");
  assert.equal(choice.message.content, null);
  assert.equal(choice.message.tool_calls.length, 1);
  assert.equal(choice.message.tool_calls[0].function.name, "get_weather");
  checkCall(choice.message.tool_calls[0]);
  // The call and its result go back; the model answers in text (tool_choice auto).
  messages.push(choice.message);
  messages.push({ role: "tool", tool_call_id: choice.message.tool_calls[0].id, content: "18 C and sunny" });
  const second = await client.chat.completions.create({ model, messages, tools, temperature: 0, max_tokens: 16 });
  assert.ok(["stop", "length"].includes(second.choices[0].finish_reason));
  assert.equal(typeof second.choices[0].message.content, "string");
  assert.ok(second.usage.prompt_tokens > first.usage.prompt_tokens);
});

test("streamed tool calls arrive as delta.tool_calls", async () => {
  const body = { model, messages: [{ role: "user", content: "Add 2 and 3" }], tools, tool_choice: "required",
    parallel_tool_calls: false, temperature: 1, seed: 8, max_tokens: 200 };
  const whole = await client.chat.completions.create(body);
  const calls = [];
  let finish = null, content = "";
  for await (const chunk of await client.chat.completions.create({ ...body, stream: true })) {
    const c = chunk.choices[0];
    if (!c) continue;
    content += c.delta?.content ?? "";
    for (const d of c.delta?.tool_calls ?? []) {
      calls[d.index] ??= { id: "", type: "function", function: { name: "", arguments: "" } };
      if (d.id) calls[d.index].id = d.id;
      if (d.function?.name) calls[d.index].function.name += d.function.name;
      if (d.function?.arguments) calls[d.index].function.arguments += d.function.arguments;
    }
    finish = c.finish_reason ?? finish;
  }
  assert.equal(finish, "tool_calls");
  assert.equal(content, "");
  assert.equal(calls.length, 1);
  checkCall(calls[0]);
  assert.equal(whole.choices[0].finish_reason, "tool_calls");
  assert.deepEqual(calls.map((c) => c.function), whole.choices[0].message.tool_calls.map((c) => c.function),
    "the same seed gives the same call streamed or not");
});

test("tool_choice required with parallel calls: every call is valid", async () => {
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({ model, messages: [{ role: "user", content: "Do things" }], tools,
      tool_choice: "required", temperature: 1, seed, max_tokens: 400 });
    const c = r.choices[0];
    assert.ok(c.message.tool_calls.length >= 1, JSON.stringify(c.message));
    for (const call of c.message.tool_calls) checkCall(call);
  }
});
