// Per-request LoRA adapters through the official `openai` client (owl serve -m stories260K
// --lora a=... --lora-runtime --deterministic): requests of two adapters and of the base model
// sent together share engine steps and each gets the answer it gets alone; llama.cpp's `lora`
// field picks adapters by id; adapters load and unload while the server runs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";

const url = process.env.OWL_URL;
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0 });
const base = "stories260K";
const prompts = ["Once upon a time", "The little dog", "Lily wanted to"];

// A second adapter made from the first: the same GGUF file with the values of every lora_a
// tensor (F32) in reverse order, so that its weights differ.
function variantOf(path) {
  const buf = Buffer.from(readFileSync(path));
  let at = 0;
  const u32 = () => ((at += 4), buf.readUInt32LE(at - 4));
  const u64 = () => ((at += 8), Number(buf.readBigUInt64LE(at - 8)));
  const str = () => {
    const n = u64();
    at += n;
    return buf.toString("utf8", at - n, at);
  };
  const sizes = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };  // GGUF value types
  const skip = (type) => {
    if (type === 8) return void str();
    if (type !== 9) return void (at += sizes[type]);
    const itemType = u32();
    for (let n = u64(); n > 0; n--) skip(itemType);
  };
  assert.equal(buf.toString("latin1", 0, 4), "GGUF");
  at = 8;
  const nTensors = u64();
  const nKv = u64();
  let alignment = 32;
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const type = u32();
    if (key === "general.alignment") alignment = buf.readUInt32LE(at);
    skip(type);
  }
  const tensors = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const dims = Array.from({ length: u32() }, u64);
    tensors.push({ name, count: dims.reduce((a, b) => a * b, 1), type: u32(), offset: u64() });
  }
  const data = Math.ceil(at / alignment) * alignment;
  let reversed = 0;
  for (const t of tensors.filter((t) => t.name.endsWith(".lora_a"))) {
    assert.equal(t.type, 0, `${t.name} is not F32`);
    const start = data + t.offset;
    const values = Array.from({ length: t.count }, (_, i) => buf.readFloatLE(start + 4 * i)).reverse();
    values.forEach((v, i) => buf.writeFloatLE(v, start + 4 * i));
    reversed++;
  }
  assert.ok(reversed > 0);
  const dir = mkdtempSync(join(tmpdir(), "owl-lora-e2e-"));
  const out = join(dir, "variant.gguf");
  writeFileSync(out, buf);
  return { path: out, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

const json = async (path, init) => {
  const res = await fetch(`${url}${path}`, init);
  return { status: res.status, body: await res.json() };
};
const postJson = (path, body) => json(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

const mixedSteps = async () => {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = text.match(/^owl_engine_mixed_adapter_steps_total (\S+)$/m);
  assert.ok(m, "the metric is exported");
  return Number(m[1]);
};

// Greedy, so that an answer is a function of the model, its adapters and the prompt.
const complete = async (model, prompt, extra = {}) => {
  const r = await client.completions.create({ model, prompt, max_tokens: 32, temperature: 0, ...extra });
  assert.equal(r.model, model);
  return r.choices[0].text;
};
const streamed = async (model, prompt) => {
  const stream = await client.completions.create({ model, prompt, max_tokens: 32, temperature: 0, stream: true });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
  return text;
};

test("adapters of two files and the base model, sent together, each answer as alone", async () => {
  const listed = await json("/lora-adapters");
  assert.equal(listed.status, 200);
  assert.deepEqual(listed.body.map((a) => a.model), [`${base}:a`]);
  const variant = variantOf(listed.body[0].path);
  try {
    const loaded = await postJson("/lora-adapters", { name: "b", path: variant.path });
    assert.equal(loaded.status, 200, JSON.stringify(loaded.body));
    assert.equal(loaded.body.model, `${base}:b`);
    const ids = (await client.models.list()).data.map((m) => m.id);
    assert.deepEqual(ids, [base, `${base}:a`, `${base}:b`]);

    const models = [base, `${base}:a`, `${base}:b`];
    const alone = new Map();
    for (const model of models) for (const prompt of prompts) alone.set(`${model}|${prompt}`, await complete(model, prompt));
    for (const prompt of prompts) {
      const answers = new Set(models.map((m) => alone.get(`${m}|${prompt}`)));
      assert.equal(answers.size, 3, `each adapter answers "${prompt}" its own way`);
    }

    const before = await mixedSteps();
    for (let round = 0; round < 2; round++) {
      const jobs = [];
      for (const model of models) {
        for (const [i, prompt] of prompts.entries()) {
          // Half of them streamed: the same answer either way.
          jobs.push({ model, prompt, text: (round + i) % 2 ? streamed(model, prompt) : complete(model, prompt) });
        }
      }
      for (const job of jobs) assert.equal(await job.text, alone.get(`${job.model}|${job.prompt}`), `${job.model}: ${job.prompt}`);
    }
    assert.ok((await mixedSteps()) > before, "sequences of different adapters were computed in the same steps");

    const unloaded = await postJson("/lora-adapters", { name: "b", unload: true });
    assert.equal(unloaded.status, 200, JSON.stringify(unloaded.body));
    await assert.rejects(complete(`${base}:b`, prompts[0]), (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError, e.constructor.name);
      assert.equal(e.code, "model_not_found");
      assert.ok(e.message.includes(`'${base}:b'`), e.message);
      return true;
    });
    assert.deepEqual((await client.models.list()).data.map((m) => m.id), [base, `${base}:a`]);
  } finally {
    variant.remove();
  }
});

test("llama.cpp's lora field picks an adapter by id; scale 0 is the base model", async () => {
  const [a] = (await json("/lora-adapters")).body;
  const prompt = prompts[0];
  assert.equal(await complete(base, prompt, { lora: [{ id: a.id, scale: 1 }] }), await complete(`${base}:a`, prompt));
  assert.equal(await complete(base, prompt, { lora: [{ id: a.id, scale: 0 }] }), await complete(base, prompt));
  const chat = await client.chat.completions.create({
    model: base, messages: [{ role: "user", content: prompt }], max_tokens: 16, temperature: 0, lora: [{ id: a.id, scale: 1 }],
  });
  const named = await client.chat.completions.create({
    model: `${base}:a`, messages: [{ role: "user", content: prompt }], max_tokens: 16, temperature: 0,
  });
  assert.equal(chat.choices[0].message.content, named.choices[0].message.content);
  await assert.rejects(complete(base, prompt, { lora: [{ id: 999, scale: 1 }] }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError, e.constructor.name);
    assert.equal(e.param, "lora");
    return true;
  });
});

test("an unknown adapter or a file that is no adapter gets OpenAI's errors, and the server goes on", async () => {
  await assert.rejects(complete(`${base}:nope`, prompts[0]), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError, e.constructor.name);
    assert.ok(e.message.includes(`'${base}:nope'`), e.message);
    return true;
  });
  const bad = await postJson("/lora-adapters", { name: "c", path: "/nonexistent/c.gguf" });
  assert.equal(bad.status, 400);
  assert.ok(bad.body.error.message.includes("/nonexistent/c.gguf"), bad.body.error.message);
  assert.ok((await complete(`${base}:a`, prompts[1])).length > 0);
});
