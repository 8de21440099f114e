// JSON Schema to GBNF: a grammar whose every complete match is a JSON text that validates
// against the schema (draft 2020-12 keywords; draft-07's `definitions` too).
//
// Enforced: type (one or a list), properties, required, additionalProperties (absent or false:
// no other keys; true or a schema: other keys, never one of the declared names), enum, const,
// items, prefixItems, minItems/maxItems, minLength/maxLength, pattern (ECMAScript regex subset:
// classes, escapes \d \w \s, groups, alternation, quantifiers, ^ and $ at the ends), format
// (date, time, date-time, uuid, email, ipv4), integer minimum/maximum/exclusiveMinimum/
// exclusiveMaximum, anyOf/oneOf, allOf of object schemas, $ref to #, #/$defs/..., #/definitions/...
// (recursion included), nullable. Annotations (title, description, default, examples, ...) are
// ignored. Any other keyword is an error naming it and its JSON pointer: nothing is dropped.
//
// Layout: properties in the schema's order; whitespace between tokens is optional and short
// (a space, or a line break and up to 20 spaces or tabs of indentation), so a model can
// write compact or pretty-printed JSON but cannot pad forever.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace owl::constrain {

core::Result<std::string> json_schema_to_gbnf(const nlohmann::ordered_json& schema);

// GBNF for any JSON object (response_format {"type": "json_object"}).
std::string json_object_gbnf();

}  // namespace owl::constrain
