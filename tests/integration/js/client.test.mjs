// client.test.mjs: the official Ollama JavaScript client against ollamax-emu.
//
// Run by ../emu-js-client.sh, which starts the emulator with the catalog in
// conf/emu-models.ini and sets OLLAMA_HOST. Tests run one after another in
// file order: the later ones rely on models the earlier ones loaded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Ollama } from 'ollama';

const host = process.env.OLLAMA_HOST;
assert.ok(host, 'OLLAMA_HOST must name the emulator (http://127.0.0.1:PORT)');
const ollama = new Ollama({ host });

const CHAT_MODEL = 'tinyllama:latest';
const EMBED_MODEL = 'nomic-embed-text:latest';
const PROMPT = 'Why is the sky blue?';
// Each test is bounded: a reply that never comes fails its test, not the run.
const BOUNDED = { timeout: 5_000 };

function assertDetails(details, where) {
  assert.equal(typeof details, 'object', `${where}: details`);
  assert.equal(details.format, 'gguf', `${where}: details.format`);
  for (const key of ['family', 'parameter_size', 'quantization_level']) {
    assert.equal(typeof details[key], 'string', `${where}: details.${key}`);
    assert.ok(details[key].length > 0, `${where}: details.${key} is empty`);
  }
  assert.ok(Array.isArray(details.families), `${where}: details.families`);
}

function assertPositiveInt(v, what) {
  assert.ok(Number.isInteger(v) && v > 0, `${what} should be a positive integer, got ${v}`);
}

async function collect(stream) {
  const parts = [];
  for await (const part of stream) parts.push(part);
  return parts;
}

async function psNames() {
  const { models } = await ollama.ps();
  assert.ok(Array.isArray(models), 'ps().models is an array');
  return models.map((m) => m.name);
}

test('list() returns the catalog models with size, digest and details', BOUNDED, async () => {
  const { models } = await ollama.list();
  assert.ok(Array.isArray(models), 'models is an array');
  const names = models.map((m) => m.name);
  for (const want of ['tinyllama:latest', 'qwen2.5:3b', 'nomic-embed-text:latest', 'llama3.2:3b']) {
    assert.ok(names.includes(want), `${want} missing from ${names.join(', ')}`);
  }
  for (const m of models) {
    assert.equal(m.model, m.name, `${m.name}: model equals name`);
    assertPositiveInt(m.size, `${m.name}: size`);
    assert.match(m.digest, /^[0-9a-f]{64}$/, `${m.name}: digest`);
    assert.ok(!Number.isNaN(Date.parse(m.modified_at)), `${m.name}: modified_at ${m.modified_at}`);
    assertDetails(m.details, m.name);
  }
  const tiny = models.find((m) => m.name === CHAT_MODEL);
  assert.equal(tiny.details.family, 'llama');
  assert.equal(tiny.details.parameter_size, '1.1B');
  assert.equal(tiny.details.quantization_level, 'Q4_0');
  // 637 MB in the catalog: the GGUF file's size, give or take rounding.
  assert.ok(Math.abs(tiny.size - 637 * 1024 * 1024) < 5 * 1024 * 1024, `size ${tiny.size}`);
});

test('show() returns details, model_info and capabilities of a model', BOUNDED, async () => {
  const info = await ollama.show({ model: CHAT_MODEL });
  assertDetails(info.details, 'show');
  assert.equal(info.details.family, 'llama');
  assert.equal(typeof info.model_info, 'object');
  assert.equal(info.model_info['general.architecture'], 'llama');
  assert.equal(info.model_info['llama.context_length'], 2048);
  assertPositiveInt(info.model_info['general.parameter_count'], 'general.parameter_count');
  assert.deepEqual(info.capabilities, ['completion']);
  assert.equal(typeof info.template, 'string');
  assert.equal(typeof info.modelfile, 'string');

  const embed = await ollama.show({ model: EMBED_MODEL });
  assert.ok(embed.capabilities.includes('embedding'), `capabilities ${embed.capabilities}`);
  assert.ok(!embed.capabilities.includes('completion'), `capabilities ${embed.capabilities}`);
  assert.equal(embed.model_info[`${embed.details.family}.embedding_length`], 768);
});

test('generate() not streamed returns the text, done_reason and timings', BOUNDED, async () => {
  const before = Date.now();
  const r = await ollama.generate({ model: CHAT_MODEL, prompt: PROMPT, options: { num_predict: 20 } });
  assert.equal(r.model, CHAT_MODEL);
  assert.equal(typeof r.response, 'string');
  assert.ok(r.response.length > 0, 'response is empty');
  assert.equal(r.done, true);
  assert.ok(['stop', 'length'].includes(r.done_reason), `done_reason ${r.done_reason}`);
  assertPositiveInt(r.eval_count, 'eval_count');
  assert.ok(r.eval_count <= 20, `eval_count ${r.eval_count} over num_predict 20`);
  assertPositiveInt(r.prompt_eval_count, 'prompt_eval_count');
  assertPositiveInt(r.total_duration, 'total_duration');
  assertPositiveInt(r.load_duration, 'load_duration');
  assertPositiveInt(r.eval_duration, 'eval_duration');
  assertPositiveInt(r.prompt_eval_duration, 'prompt_eval_duration');
  assert.ok(r.total_duration >= r.load_duration, 'total_duration covers load_duration');
  assert.ok(Array.isArray(r.context) && r.context.length > 0, 'context');
  const created = Date.parse(r.created_at);
  assert.ok(!Number.isNaN(created), `created_at ${r.created_at}`);
  assert.ok(created >= before - 1000, `created_at ${r.created_at} is in the past`);
});

test('generate() with num_predict 5 stops on length after 5 tokens', BOUNDED, async () => {
  const r = await ollama.generate({ model: CHAT_MODEL, prompt: PROMPT, options: { num_predict: 5 } });
  assert.equal(r.done, true);
  assert.equal(r.done_reason, 'length');
  assert.equal(r.eval_count, 5);
  assert.ok(r.response.length > 0);
});

test('generate() streamed yields parts then a last one with done true', BOUNDED, async () => {
  const stream = await ollama.generate({
    model: CHAT_MODEL,
    prompt: PROMPT,
    stream: true,
    options: { num_predict: 12 },
  });
  const parts = await collect(stream);
  assert.ok(parts.length >= 3, `only ${parts.length} parts`);
  const last = parts.at(-1);
  const body = parts.slice(0, -1);
  for (const p of body) {
    assert.equal(p.done, false, 'a part before the last has done true');
    assert.equal(p.model, CHAT_MODEL);
    assert.equal(typeof p.response, 'string');
  }
  assert.equal(last.done, true);
  assert.equal(last.done_reason, 'length');
  const nonEmpty = body.filter((p) => p.response.length > 0).length;
  assert.ok(nonEmpty >= 2, `only ${nonEmpty} non-empty parts`);
  assert.equal(last.eval_count, nonEmpty);
  assert.equal(last.eval_count, 12);
  assertPositiveInt(last.prompt_eval_count, 'prompt_eval_count');
  assertPositiveInt(last.total_duration, 'total_duration');
});

test('a streamed answer joins into the same text as the answer not streamed', BOUNDED, async () => {
  const req = { model: CHAT_MODEL, prompt: 'Name three colours.', options: { num_predict: 15, seed: 7 } };
  const whole = await ollama.generate({ ...req });
  const parts = await collect(await ollama.generate({ ...req, stream: true }));
  assert.equal(parts.map((p) => p.response).join(''), whole.response);
});

test('the same model, prompt and seed give the same text twice', BOUNDED, async () => {
  const req = { model: CHAT_MODEL, prompt: 'Tell me a story.', options: { num_predict: 20, seed: 42 } };
  const a = await ollama.generate({ ...req });
  const b = await ollama.generate({ ...req });
  assert.ok(a.response.length > 0);
  assert.equal(b.response, a.response);
  assert.equal(b.eval_count, a.eval_count);
});

test('chat() not streamed answers with an assistant message', BOUNDED, async () => {
  const r = await ollama.chat({
    model: CHAT_MODEL,
    messages: [{ role: 'user', content: PROMPT }],
    options: { num_predict: 10 },
  });
  assert.equal(r.model, CHAT_MODEL);
  assert.equal(r.message.role, 'assistant');
  assert.equal(typeof r.message.content, 'string');
  assert.ok(r.message.content.length > 0, 'content is empty');
  assert.equal(r.done, true);
  assert.equal(r.done_reason, 'length');
  assert.equal(r.eval_count, 10);
  assertPositiveInt(r.prompt_eval_count, 'prompt_eval_count');
  assertPositiveInt(r.total_duration, 'total_duration');
});

test('chat() streamed yields assistant message parts then done', BOUNDED, async () => {
  const stream = await ollama.chat({
    model: CHAT_MODEL,
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: PROMPT },
    ],
    stream: true,
    options: { num_predict: 8 },
  });
  const parts = await collect(stream);
  assert.ok(parts.length >= 3, `only ${parts.length} parts`);
  for (const p of parts) {
    assert.equal(p.message.role, 'assistant');
    assert.equal(typeof p.message.content, 'string');
  }
  for (const p of parts.slice(0, -1)) assert.equal(p.done, false);
  const last = parts.at(-1);
  assert.equal(last.done, true);
  assert.equal(last.done_reason, 'length');
  const text = parts.map((p) => p.message.content).join('');
  assert.ok(text.length > 0, 'streamed content is empty');
  assert.equal(last.eval_count, parts.slice(0, -1).filter((p) => p.message.content.length > 0).length);
});

test('embed() of two inputs returns two unit vectors of 768 numbers', BOUNDED, async () => {
  const r = await ollama.embed({ model: EMBED_MODEL, input: ['first text', 'second text'] });
  assert.equal(r.model, EMBED_MODEL);
  assert.ok(Array.isArray(r.embeddings), 'embeddings is an array');
  assert.equal(r.embeddings.length, 2);
  for (const [i, v] of r.embeddings.entries()) {
    assert.equal(v.length, 768, `embedding ${i} has ${v.length} numbers`);
    assert.ok(v.every((x) => typeof x === 'number' && Number.isFinite(x)), `embedding ${i} has a non-number`);
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    assert.ok(Math.abs(norm - 1) < 1e-3, `embedding ${i} has L2 norm ${norm}`);
  }
  assert.notDeepEqual(r.embeddings[0], r.embeddings[1]);
  assertPositiveInt(r.prompt_eval_count, 'prompt_eval_count');
  assertPositiveInt(r.total_duration, 'total_duration');

  const again = await ollama.embed({ model: EMBED_MODEL, input: 'first text' });
  assert.equal(again.embeddings.length, 1);
  assert.deepEqual(again.embeddings[0], r.embeddings[0]);
});

test('ps() after a generate lists the model with its sizes, expiry and context', BOUNDED, async () => {
  await ollama.generate({ model: CHAT_MODEL, prompt: PROMPT, options: { num_predict: 3 } });
  const { models } = await ollama.ps();
  const m = models.find((x) => x.name === CHAT_MODEL);
  assert.ok(m, `${CHAT_MODEL} missing from ps: ${models.map((x) => x.name).join(', ')}`);
  assert.equal(m.model, CHAT_MODEL);
  assertPositiveInt(m.size, 'size');
  assertPositiveInt(m.size_vram, 'size_vram');
  assert.ok(m.size_vram <= m.size, `size_vram ${m.size_vram} over size ${m.size}`);
  assert.match(m.digest, /^[0-9a-f]{64}$/);
  assertDetails(m.details, 'ps');
  const expires = Date.parse(m.expires_at);
  assert.ok(!Number.isNaN(expires), `expires_at ${m.expires_at}`);
  assert.ok(expires > Date.now(), `expires_at ${m.expires_at} is not in the future`);
  assertPositiveInt(m.context_length, 'context_length');
  assert.ok(m.context_length <= 2048, `context_length ${m.context_length} over the trained 2048`);
});

test('generate() of an unknown model rejects with a 404 "not found" error', BOUNDED, async () => {
  await assert.rejects(
    ollama.generate({ model: 'no-such-model', prompt: PROMPT }),
    (err) => {
      assert.equal(err.message, "model 'no-such-model' not found");
      assert.equal(err.name, 'ResponseError');
      assert.equal(err.status_code, 404);
      return true;
    },
  );
});

test('an empty prompt loads the model and keep_alive 0 unloads it', BOUNDED, async () => {
  const loaded = await ollama.generate({ model: CHAT_MODEL, prompt: '' });
  assert.equal(loaded.done, true);
  assert.equal(loaded.done_reason, 'load');
  assert.equal(loaded.response, '');
  assert.ok((await psNames()).includes(CHAT_MODEL), 'not listed by ps() after the load');

  const unloaded = await ollama.generate({ model: CHAT_MODEL, prompt: '', keep_alive: 0 });
  assert.equal(unloaded.done, true);
  assert.equal(unloaded.done_reason, 'unload');
  assert.equal(unloaded.response, '');

  // The unload takes 250 ms of simulated time: a few real ms at --speed 50.
  let names = await psNames();
  for (let i = 0; i < 40 && names.includes(CHAT_MODEL); i++) {
    await sleep(50);
    names = await psNames();
  }
  assert.ok(!names.includes(CHAT_MODEL), `still listed by ps() after the unload: ${names.join(', ')}`);
});
