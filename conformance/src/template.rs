//! `{{var}}` templating of strings and JSON values, and JSON merge patches: how case files,
//! target files and thick specs become concrete invocations.

use serde_json::Value;

/// Render `{{var}}` placeholders in every string of a JSON value. A string that is exactly one
/// placeholder whose variable holds non-string JSON becomes that JSON.
pub fn render_value(v: &Value, vars: &dyn Fn(&str) -> Option<Value>) -> Value {
    match v {
        Value::String(s) => {
            let t = s.trim();
            if t.starts_with("{{")
                && t.ends_with("}}")
                && t[2..t.len() - 2].chars().all(|c| c != '{' && c != '}')
                && let Some(val) = vars(t[2..t.len() - 2].trim())
                && !val.is_string()
            {
                return val;
            }
            Value::String(render_str(s, vars))
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| render_value(x, vars)).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, x)| (render_str(k, vars), render_value(x, vars))).collect())
        }
        other => other.clone(),
    }
}

/// Render `{{var}}` placeholders in a string; unknown variables are left as they are.
pub fn render_str(s: &str, vars: &dyn Fn(&str) -> Option<Value>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        match vars(name) {
            Some(Value::String(x)) => out.push_str(&x),
            Some(other) => out.push_str(&other.to_string()),
            None => {
                out.push_str("{{");
                out.push_str(&after[..end]);
                out.push_str("}}");
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Some(t) = target.as_object_mut() else { return };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rendering() {
        let vars = |k: &str| match k {
            "version" => Some(json!("1.0.0")),
            "prev" => Some(json!({"a": 1})),
            _ => None,
        };
        let v = json!({"cniVersion": "{{version}}", "p": "{{ prev }}", "x": "a-{{version}}-{{nope}}"});
        assert_eq!(render_value(&v, &vars), json!({"cniVersion": "1.0.0", "p": {"a": 1}, "x": "a-1.0.0-{{nope}}"}));
    }

    #[test]
    fn patching() {
        let mut v = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut v, &json!({"a": null, "b": {"c": 5}, "e": [1]}));
        assert_eq!(v, json!({"b": {"c": 5, "d": 3}, "e": [1]}));
    }
}
