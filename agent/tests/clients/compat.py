"""Drives a running `llamafleet-agent serve` with the official openai and ollama clients.

Usage: compat.py BASE_URL MODEL API_KEY. Exits non-zero (with a traceback) on any mismatch.
"""
import sys

import ollama
import openai

base, model, key = sys.argv[1], sys.argv[2], sys.argv[3]

oa = openai.OpenAI(base_url=f"{base}/v1", api_key=key)
ids = [m.id for m in oa.models.list()]
assert model in ids, ids

chat = oa.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "What is 2 + 2?"}],
    max_tokens=8,
    temperature=0,
)
assert chat.choices[0].message.content, chat
assert chat.usage.completion_tokens <= 8, chat.usage

pieces = []
final_usage = None
for chunk in oa.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Name three colours."}],
    max_tokens=10,
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if chunk.usage:
        final_usage = chunk.usage
assert "".join(pieces), pieces
assert final_usage is not None and final_usage.completion_tokens <= 10, final_usage

emb = oa.embeddings.create(model=model, input=["hello", "world"])
assert len(emb.data) == 2 and len(emb.data[0].embedding) == 640, len(emb.data[0].embedding)

try:
    oa.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise AssertionError("unknown model accepted")
except openai.NotFoundError:
    pass

ol = ollama.Client(host=base, headers={"Authorization": f"Bearer {key}"})
names = [m.model for m in ol.list().models]
assert model in names, names

reply = ol.chat(model=model, messages=[{"role": "user", "content": "Hi"}], options={"num_predict": 6})
assert reply.message.content is not None and reply.done, reply

streamed = list(ol.generate(model=model, prompt="The sky is", stream=True, options={"num_predict": 6}))
assert streamed[-1].done and any(p.response for p in streamed), streamed

e = ol.embed(model=model, input=["hello"])
assert len(e.embeddings) == 1 and len(e.embeddings[0]) == 640

print("compat ok")
