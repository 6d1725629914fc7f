"""Shared pieces of the tool-call scoring tests (toolcalls, evaluate, cli): two tools with JSON Schemas, a
conversation with parallel calls over them, and replies written the way the Hermes template writes calls."""
import json

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Current weather.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                          "required": ["city"], "additionalProperties": False}}}


TIME = {"type": "function", "function": {"name": "get_time", "description": "Current time.",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}


TOOLS = [WEATHER, TIME]


OSLO = [{"name": "get_weather", "arguments": {"city": "Oslo"}}]


CONV = {"messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Weather in Oslo, and the time in Tokyo?"},
                     {"role": "assistant", "content": "", "tool_calls": [
                         {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
                         {"type": "function", "function": {"name": "get_time", "arguments": '{"tz": "Asia/Tokyo"}'}}]},
                     {"role": "tool", "name": "get_weather", "content": "4 °C"},
                     {"role": "tool", "name": "get_time", "content": "21:00"},
                     {"role": "assistant", "content": "4 °C in Oslo; 21:00 in Tokyo."},
                     {"role": "user", "content": "Thanks!"},
                     {"role": "assistant", "content": "You're welcome."}],
        "tools": TOOLS}


def call(name, args, close=True):
    "A reply with one call, written the way the Hermes template writes it."
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n' + ("</tool_call>" if close else "")


# BFCL-style pieces: a function as BFCL's question files write it (BFCL's type names), possible answers in the form
# of its possible-answer files, and a row joining the two as a user copying BFCL's data would write it.
FORECAST = {"name": "get_forecast", "description": "Weather forecast.",
            "parameters": {"type": "dict", "required": ["city", "days"],
                           "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                                          "min_temp": {"type": "float"},
                                          "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}}


LISBON = [{"get_forecast": {"city": ["Lisbon", "Lisbon, Portugal"], "days": [2], "unit": ["celsius", ""]}}]


BFCL_ROW = {"id": "simple_0", "question": [[{"role": "user", "content": "Two-day forecast for Lisbon?"}]],
            "function": [FORECAST], "ground_truth": LISBON}
