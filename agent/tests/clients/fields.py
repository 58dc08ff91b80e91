"""Nothing silently ignored: every request field of the official clients' request types
(openai, anthropic and ollama, pinned in scripts/requirements-test.txt) is sent, one at a time, to a
running `llamafleet-agent serve`, and must be either honoured (200) or refused with a 400
whose message names it. A field a new client version adds, and this table does not decide,
fails the test.

Usage: fields.py BASE_URL MODEL API_KEY. Prints "fields ok" at the end.
"""
import json
import sys
import typing
import urllib.error
import urllib.request

from anthropic.types import message_create_params
from ollama import _types as ollama_types
from openai.types import completion_create_params, embedding_create_params
from openai.types.chat import completion_create_params as chat_create_params
from openai.types.responses import response_create_params

base, model, key = sys.argv[1], sys.argv[2], sys.argv[3]

OK, REFUSED = "honoured", "refused"
USER = [{"role": "user", "content": "Hi"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

# route -> (minimal body, {field: (value, expected)}, official field names)
ROUTES = {
    "/v1/chat/completions": (
        {"model": model, "messages": USER, "max_tokens": 2},
        {
            "audio": ({"voice": "alloy", "format": "mp3"}, REFUSED),
            "frequency_penalty": (0.5, OK),
            "function_call": ("auto", REFUSED),
            "functions": ([TOOL["function"]], REFUSED),
            "logit_bias": ({"1": -100}, REFUSED),
            "logprobs": (True, OK),
            "max_completion_tokens": (2, OK),
            "max_tokens": (2, OK),
            "messages": (USER, OK),
            "metadata": ({"k": "v"}, REFUSED),
            "modalities": (["text"], OK),
            "model": (model, OK),
            "moderation": ({"enabled": True}, REFUSED),
            "n": (2, OK),
            "parallel_tool_calls": (True, OK),
            "prediction": ({"type": "content", "content": "x"}, REFUSED),
            "presence_penalty": (0.5, OK),
            "prompt_cache_key": ("k", REFUSED),
            "prompt_cache_options": ({}, REFUSED),
            "prompt_cache_retention": ("24h", REFUSED),
            "reasoning_effort": ("low", REFUSED),
            "response_format": ({"type": "json_object"}, OK),
            "safety_identifier": ("s-1", OK),
            "seed": (1, OK),
            "service_tier": ("auto", REFUSED),
            "stop": (["\n"], OK),
            "store": (True, REFUSED),
            "stream": (False, OK),
            "stream_options": ({"include_usage": True}, REFUSED),  # without stream: true
            "temperature": (0.5, OK),
            "tool_choice": ("none", OK),
            "tools": ([TOOL], OK),
            "top_logprobs": (2, REFUSED),  # without logprobs: true
            "top_p": (0.9, OK),
            "user": ("u-1", OK),
            "verbosity": ("low", REFUSED),
            "web_search_options": ({}, REFUSED),
        },
        set(typing.get_type_hints(chat_create_params.CompletionCreateParamsBase)) | {"stream"},
    ),
    "/v1/responses": (
        {"model": model, "input": "Hi", "max_output_tokens": 2},
        {
            "access_programs": ({}, REFUSED),
            "background": (True, REFUSED),
            "background_options": ({}, REFUSED),
            "context_management": ([], REFUSED),
            "conversation": ("conv_1", REFUSED),
            "image": ({}, REFUSED),
            "include": ([], REFUSED),
            "input": ("Hi", OK),
            "instructions": ("Be brief.", OK),
            "max_output_tokens": (2, OK),
            "max_tool_calls": (1, REFUSED),
            "metadata": ({"k": "v"}, OK),
            "model": (model, OK),
            "moderation": ({}, REFUSED),
            "parallel_tool_calls": (False, OK),
            "previous_response_id": ("resp_1", REFUSED),
            "prompt": ({"id": "p"}, REFUSED),
            "prompt_cache_key": ("k", REFUSED),
            "prompt_cache_options": ({}, REFUSED),
            "prompt_cache_retention": ("24h", REFUSED),
            "reasoning": ({"effort": "low"}, REFUSED),
            "safety_identifier": ("s-1", OK),
            "service_tier": ("auto", REFUSED),
            "store": (False, OK),
            "stream": (False, OK),
            "stream_options": ({"include_obfuscation": False}, REFUSED),
            "temperature": (0.5, OK),
            "text": ({"format": {"type": "json_object"}}, OK),
            "tool_choice": ("auto", OK),
            "tools": ([{"type": "function", "name": "f", "parameters": {"type": "object"}}], OK),
            "top_logprobs": (2, REFUSED),
            "top_p": (0.9, OK),
            "truncation": ("disabled", OK),
            "user": ("u-1", OK),
        },
        set(typing.get_type_hints(response_create_params.ResponseCreateParamsBase)) | {"stream"},
    ),
    "/v1/messages": (
        {"model": model, "max_tokens": 2, "messages": USER},
        {
            "cache_control": ({"type": "ephemeral"}, OK),
            "container": ("c", REFUSED),
            "diagnostics": ({}, REFUSED),
            "inference_geo": ("us", REFUSED),
            "max_tokens": (2, OK),
            "messages": (USER, OK),
            "metadata": ({"user_id": "u-1"}, OK),
            "model": (model, OK),
            "output_config": ({"format": {"type": "json_schema", "schema": {"type": "object"}}}, OK),
            "service_tier": ("auto", OK),
            "speed": ("fast", REFUSED),
            "stop_sequences": (["\n"], OK),
            "stream": (False, OK),
            "system": ("Be brief.", OK),
            "thinking": ({"type": "disabled"}, OK),
            "tool_choice": ({"type": "auto"}, OK),
            "tools": ([{"name": "f", "input_schema": {"type": "object"}}], OK),
            "user_profile_id": ("p", REFUSED),
            "workspace_id": ("w", REFUSED),
        },
        set(typing.get_type_hints(message_create_params.MessageCreateParamsBase)) | {"stream"},
    ),
    "/v1/completions": (
        {"model": model, "prompt": "Hi", "max_tokens": 2},
        {
            "best_of": (2, REFUSED),
            "echo": (True, REFUSED),
            "frequency_penalty": (0.5, OK),
            "logit_bias": ({"1": -100}, REFUSED),
            "logprobs": (2, OK),
            "max_tokens": (2, OK),
            "model": (model, OK),
            "n": (2, OK),
            "presence_penalty": (0.5, OK),
            "prompt": ("Hi", OK),
            "seed": (1, OK),
            "stop": ("\n", OK),
            "stream": (False, OK),
            "stream_options": ({"include_usage": True}, REFUSED),
            "suffix": ("!", REFUSED),
            "temperature": (0.5, OK),
            "top_p": (0.9, OK),
            "user": ("u-1", OK),
        },
        set(typing.get_type_hints(completion_create_params.CompletionCreateParamsBase)) | {"stream"},
    ),
    "/v1/embeddings": (
        {"model": model, "input": "Hi"},
        {
            "dimensions": (8, REFUSED),
            "encoding_format": ("float", OK),
            "input": ("Hi", OK),
            "model": (model, OK),
            "user": ("u-1", OK),
        },
        set(typing.get_type_hints(embedding_create_params.EmbeddingCreateParams)),
    ),
    "/api/generate": (
        {"model": model, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}},
        {
            "context": ([1, 2], REFUSED),
            "format": ("json", OK),
            "height": (64, REFUSED),
            "images": (["aGk="], REFUSED),
            "keep_alive": ("5m", OK),
            "logprobs": (True, OK),
            "model": (model, OK),
            "options": ({"num_predict": 2}, OK),
            "prompt": ("Hi", OK),
            "raw": (True, OK),
            "steps": (4, REFUSED),
            "stream": (False, OK),
            "suffix": ("!", REFUSED),
            "system": ("Be brief.", OK),
            "template": ("{{ .Prompt }}", REFUSED),
            "think": (True, REFUSED),
            "top_logprobs": (2, REFUSED),  # without logprobs: true
            "width": (64, REFUSED),
        },
        set(ollama_types.GenerateRequest.model_fields),
    ),
    "/api/chat": (
        {"model": model, "messages": USER, "stream": False, "options": {"num_predict": 2}},
        {
            "format": ("json", OK),
            "keep_alive": (0, OK),
            "logprobs": (True, OK),
            "messages": (USER, OK),
            "model": (model, OK),
            "options": ({"num_predict": 2}, OK),
            "stream": (False, OK),
            "think": (False, OK),
            "tools": ([TOOL], OK),
            "top_logprobs": (2, REFUSED),  # without logprobs: true
        },
        set(ollama_types.ChatRequest.model_fields),
    ),
    "/api/embed": (
        {"model": model, "input": "Hi"},
        {
            "dimensions": (8, REFUSED),
            "input": ("Hi", OK),
            "keep_alive": ("5m", OK),
            "model": (model, OK),
            "options": ({"num_ctx": 64}, REFUSED),
            "truncate": (True, REFUSED),
        },
        set(ollama_types.EmbedRequest.model_fields),
    ),
}

OPTIONS = {
    "frequency_penalty": (0.5, OK), "num_ctx": (256, OK), "num_predict": (2, OK),
    "presence_penalty": (0.5, OK), "repeat_penalty": (1.1, OK), "seed": (1, OK),
    "stop": (["\n"], OK), "temperature": (0.5, OK), "top_k": (20, OK), "top_p": (0.9, OK),
    "embedding_only": (False, REFUSED), "f16_kv": (True, REFUSED), "logits_all": (False, REFUSED),
    "low_vram": (False, REFUSED), "main_gpu": (0, REFUSED), "mirostat": (1, REFUSED),
    "mirostat_eta": (0.1, REFUSED), "mirostat_tau": (5.0, REFUSED), "num_batch": (64, REFUSED),
    "num_gpu": (0, REFUSED), "num_keep": (4, REFUSED), "num_thread": (2, REFUSED),
    "numa": (False, REFUSED), "penalize_newline": (True, REFUSED), "repeat_last_n": (32, REFUSED),
    "tfs_z": (1.0, REFUSED), "typical_p": (0.9, REFUSED), "use_mlock": (False, REFUSED),
    "use_mmap": (True, REFUSED), "vocab_only": (False, REFUSED),
}
MESSAGE = {
    "content": ("Hi", OK), "role": ("user", OK), "images": (["aGk="], REFUSED),
    "thinking": ("hmm", REFUSED), "tool_calls": ([], REFUSED), "tool_name": ("f", REFUSED),
}


def post(path, body):
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    req = urllib.request.Request(f"{base}{path}", json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def check(path, body, field, expected):
    status, text = post(path, body)
    where = f"{path} {field}={json.dumps(body)[:200]}: {status} {text[:300]}"
    if expected == OK:
        assert status == 200, where
    else:
        assert status == 400 and field.split(".")[-1].rstrip("s") in text, where


def undecided(official, decided, what):
    missing = sorted(set(official) - set(decided))
    assert not missing, f"{what}: official fields without a decision here: {missing}"


for path, (minimal, fields, official) in ROUTES.items():
    undecided(official, fields, path)
    for field, (value, expected) in fields.items():
        check(path, {**minimal, field: value}, field, expected)
undecided(ollama_types.Options.model_fields, OPTIONS, "ollama options")
for option, (value, expected) in OPTIONS.items():
    body = {"model": model, "prompt": "Hi", "stream": False, "options": {"num_predict": 2, option: value}}
    check("/api/generate", body, f"options.{option}", expected)
undecided(ollama_types.Message.model_fields, MESSAGE, "ollama message")
for field, (value, expected) in MESSAGE.items():
    message = {"role": "user", "content": "Hi", field: value}
    body = {"model": model, "messages": [message], "stream": False, "options": {"num_predict": 2}}
    check("/api/chat", body, f"messages.0.{field}", expected)

print("fields ok")
