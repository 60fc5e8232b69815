//! Query strings to connect params.

use serde_json::{Map, Value};

/// Parse a URL query string into params (later keys win), values as JSON
/// strings. Nested keys (`user[id]=1`) become nested objects, as Plug does.
pub fn parse_query(query: Option<&str>) -> Map<String, Value> {
    let mut params = Map::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        insert(&mut params, &key, Value::String(value.into_owned()));
    }
    params
}

fn insert(params: &mut Map<String, Value>, key: &str, value: Value) {
    let Some((head, rest)) = key.split_once('[') else {
        params.insert(key.to_owned(), value);
        return;
    };
    let Some((inner, tail)) = rest.split_once(']') else {
        params.insert(key.to_owned(), value);
        return;
    };
    let child = params
        .entry(head.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !child.is_object() {
        *child = Value::Object(Map::new());
    }
    if let Value::Object(map) = child {
        insert(map, &format!("{inner}{tail}"), value);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_query;
    use serde_json::json;

    #[test]
    fn flat_and_nested_params() {
        let params = parse_query(Some(
            "vsn=2.0.0&user_id=a%20b&user[name]=x&user[tags][0]=t&",
        ));
        assert_eq!(
            serde_json::Value::Object(params),
            json!({"vsn": "2.0.0", "user_id": "a b", "user": {"name": "x", "tags": {"0": "t"}}})
        );
    }

    #[test]
    fn empty_query() {
        assert!(parse_query(None).is_empty());
    }
}
