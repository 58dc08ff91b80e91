"""Drives a running `llamafleet-agent serve` with the official openai, anthropic and ollama
clients.

Usage: compat.py BASE_URL MODEL API_KEY. Exits non-zero (with a traceback) on any mismatch.
"""
import json
import sys
from typing import Literal

import anthropic
import ollama
import openai
from pydantic import BaseModel, Field

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


# Log probabilities, as the client reads them.
lp = oa.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0,
    logprobs=True, top_logprobs=2,
)
content = lp.choices[0].logprobs.content
assert len(content) == lp.usage.completion_tokens and len(content[0].top_logprobs) == 2, lp
assert content[0].top_logprobs[0].token == content[0].token, lp

# Several choices, as the client reads them (what the copies share is tested in serve_choices.rs).
two = oa.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0, n=2,
    logprobs=True,
)
assert [c.index for c in two.choices] == [0, 1], two
assert all(len(c.logprobs.content) == 4 or c.finish_reason == "stop" for c in two.choices), two
assert two.usage.completion_tokens == sum(len(c.logprobs.content) for c in two.choices), two
finished = {}
for chunk in oa.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0.9,
    seed=3, n=2, stream=True,
):
    for c in chunk.choices:
        if c.finish_reason:
            finished[c.index] = c.finish_reason
assert set(finished) == {0, 1}, finished

# Structured outputs. Every field is bounded, so a complete answer fits in max_tokens.
class Person(BaseModel):
    name: str = Field(max_length=12)
    age: int = Field(ge=0, le=120)
    colour: Literal["red", "green", "blue"]


for temperature in (0, 0.9):
    parsed = oa.chat.completions.parse(
        model=model,
        messages=[{"role": "user", "content": "Describe a person."}],
        response_format=Person,
        max_tokens=80,
        temperature=temperature,
        seed=1,
    )
    assert isinstance(parsed.choices[0].message.parsed, Person), parsed

# A short object shown first: unconstrained, the base model answers it and rambles on.
few_shot = [
    {"role": "user", "content": "The colour of the sky, as JSON."},
    {"role": "assistant", "content": '{"colour": "blue"}'},
    {"role": "user", "content": "The colour of grass, as JSON."},
]
obj = oa.chat.completions.create(
    model=model, messages=few_shot, response_format={"type": "json_object"}, max_tokens=80, temperature=0
)
assert isinstance(json.loads(obj.choices[0].message.content), dict), obj

try:
    oa.chat.completions.create(
        model=model,
        messages=few_shot,
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "number", "multipleOf": 2}}},
    )
    raise AssertionError("an unenforceable schema was accepted")
except openai.BadRequestError as e:
    assert "multipleOf" in str(e), e

reply = ol.chat(model=model, messages=few_shot, format="json", options={"temperature": 0, "num_predict": 80})
assert isinstance(json.loads(reply.message.content), dict), reply
reply = ol.chat(
    model=model,
    messages=[{"role": "user", "content": "Describe a person."}],
    format=Person.model_json_schema(),
    options={"temperature": 0, "num_predict": 80},
)
Person.model_validate_json(reply.message.content)
reply = ol.generate(model=model, prompt="A person:", format=Person.model_json_schema(), options={"num_predict": 80})
Person.model_validate_json(reply.response)

# Tools: a required call parses and its arguments validate, whole and streamed (assembled
# from deltas as the client's own stream helper does). One call per answer: allowed several,
# this small model goes on calling until max_tokens.
class Weather(BaseModel):
    city: str = Field(max_length=20)
    unit: Literal["celsius", "fahrenheit"]


weather_tool = openai.pydantic_function_tool(Weather, name="get_weather")
asked = [{"role": "user", "content": "What is the weather in Paris?"}]
called = oa.chat.completions.create(
    model=model, messages=asked, tools=[weather_tool], tool_choice="required", parallel_tool_calls=False,
    max_tokens=80, temperature=0,
)
call = called.choices[0].message.tool_calls[0]
assert called.choices[0].finish_reason == "tool_calls", called
assert call.function.name == "get_weather", call
Weather.model_validate_json(call.function.arguments)

with oa.chat.completions.stream(
    model=model, messages=asked, tools=[weather_tool],
    tool_choice={"type": "function", "function": {"name": "get_weather"}}, parallel_tool_calls=False,
    max_tokens=80,
) as stream:
    final = stream.get_final_completion()
assert isinstance(final.choices[0].message.tool_calls[0].function.parsed_arguments, Weather), final

# The result goes back in a tool message; the answer is text.
answer = oa.chat.completions.create(
    model=model,
    messages=asked + [called.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "21 C"}],
    tools=[weather_tool], tool_choice="none", max_tokens=16, temperature=0,
)
assert answer.choices[0].message.content and not answer.choices[0].message.tool_calls, answer

reply = ol.chat(
    model=model,
    messages=[
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}}}]},
        {"role": "tool", "tool_name": "get_weather", "content": "3 C"},
        {"role": "user", "content": "Weather in Rome?"},
    ],
    tools=[weather_tool],
    options={"temperature": 0, "num_predict": 80},
)
for c in reply.message.tool_calls or []:
    assert c.function.name == "get_weather", reply
    Weather.model_validate(c.function.arguments)
assert reply.message.tool_calls or reply.message.content, reply

# The Responses API: text, the event stream the client accumulates, a function call round trip.
resp = oa.responses.create(model=model, input="Name a colour.", instructions="Be brief.", max_output_tokens=12)
assert resp.output_text and resp.usage.output_tokens <= 12, resp
# Cut by max_output_tokens, a response ends with response.incomplete (the helper's
# get_final_response wants response.completed, as on OpenAI).
with oa.responses.stream(model=model, input="Name a colour.", max_output_tokens=12) as stream:
    kinds = [event.type for event in stream]
assert kinds[0] == "response.created" and "response.output_text.delta" in kinds, kinds
assert kinds[-1] in ("response.completed", "response.incomplete"), kinds
fn_tool = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": Weather.model_json_schema(), "strict": True}
fn_call = oa.responses.create(
    model=model, input="Weather in Paris?", tools=[fn_tool], tool_choice="required",
    parallel_tool_calls=False, max_output_tokens=80, temperature=0,
)
made = [item for item in fn_call.output if item.type == "function_call"]
assert len(made) == 1, fn_call
Weather.model_validate_json(made[0].arguments)
follow_up = oa.responses.create(
    model=model,
    input=[{"role": "user", "content": "Weather in Paris?"}, *fn_call.output,
           {"type": "function_call_output", "call_id": made[0].call_id, "output": "21 C"}],
    tools=[fn_tool], max_output_tokens=16,
)
assert follow_up.status in ("completed", "incomplete"), follow_up

# Anthropic's client: a message, its event stream, token counting, tools, structured output.
an = anthropic.Anthropic(base_url=base, api_key=key)
hello = [{"role": "user", "content": "Name a colour."}]
msg = an.messages.create(model=model, max_tokens=12, messages=hello, system="Be brief.")
assert msg.content[0].type == "text" and msg.content[0].text, msg
assert msg.stop_reason in ("end_turn", "max_tokens") and msg.usage.output_tokens <= 12, msg
with an.messages.stream(model=model, max_tokens=12, messages=hello) as stream:
    streamed_text = "".join(stream.text_stream)
    final_message = stream.get_final_message()
assert streamed_text and final_message.content[0].text == streamed_text, final_message
counted = an.messages.count_tokens(model=model, messages=hello, system="Be brief.")
assert counted.input_tokens == msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0), counted
weather_schema = Weather.model_json_schema()
used = an.messages.create(
    model=model, max_tokens=80, messages=asked,
    tools=[{"name": "get_weather", "description": "Weather in a city", "input_schema": weather_schema}],
    tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
)
block = next(b for b in used.content if b.type == "tool_use")
assert used.stop_reason == "tool_use" and block.name == "get_weather", used
Weather.model_validate(block.input)
try:
    an.messages.create(model=model, max_tokens=4, messages=hello, container="c")
    raise AssertionError("an unsupported field was accepted")
except anthropic.BadRequestError as e:
    assert "container" in str(e), e

print("compat ok")
