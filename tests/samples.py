"""Shared pieces of the test conversations (a weather call with distinct marker strings, so tests
can tell which text is supervised)."""

SYSTEM = "You are a careful assistant zq-sys."
USER = "What is the weather in Oslo today?"
TOOL_RESULT = '{"temp_c": 4, "sky": "overcast-xr7"}'
ANSWER = "It is 4 °C and overcast in Oslo."
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city (desc-mk2).",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
