//! The line formats: Go's text line and JSON, with the event's and its spans' fields.

use super::*;

/// Fields of an event or a span, in the order they were recorded, with their JSON values.
#[derive(Debug, Default, Clone)]
pub(super) struct Fields {
    message: Option<String>,
    values: Vec<(&'static str, Value)>,
}

impl Fields {
    fn set(&mut self, name: &'static str, value: Value) {
        match self.values.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name, value)),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
        } else {
            self.set(field.name(), Value::String(value.to_string()));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), Value::Bool(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `log` records bridged into tracing carry their metadata as `log.*` fields.
        if field.name().starts_with("log.") {
            return;
        }
        self.record_str(field, &format!("{value:?}"));
    }
}

/// A span's recorded fields, kept in the span's extensions by [`SpanFieldsLayer`].
pub(super) struct SpanFields(Fields);

/// Records every span's fields so that both line formats can print them with each event.
pub(super) struct SpanFieldsLayer;

impl<S> Layer<S> for SpanFieldsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            match extensions.get_mut::<SpanFields>() {
                Some(SpanFields(fields)) => values.record(fields),
                None => {
                    let mut fields = Fields::default();
                    values.record(&mut fields);
                    extensions.insert(SpanFields(fields));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Line formats

#[derive(Debug, Clone, Copy)]
pub(super) struct LineFormat {
    pub(super) format: Format,
}

/// Go's level name and message prefix (warnings are errors with a `warning: ` prefix).
pub(super) fn go_level(level: Level) -> (&'static str, &'static str) {
    match level {
        Level::ERROR => ("error", ""),
        Level::WARN => ("error", "warning: "),
        Level::INFO => ("verbose", ""),
        _ => ("debug", ""),
    }
}

pub(super) fn json_level(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "verbose",
        _ => "debug",
    }
}

pub(super) fn colour_of(level: Level) -> &'static str {
    match level {
        Level::ERROR => "\x1b[31m",
        Level::WARN => "\x1b[33m",
        Level::INFO => "\x1b[32m",
        _ => "\x1b[34m",
    }
}

/// RFC 3339 in UTC with microseconds: Go's `time.RFC3339` shape with a fraction.
pub(super) fn timestamp(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A value in a text line: strings bare unless they need quotes.
pub(super) fn text_value(value: &Value) -> String {
    match value {
        Value::String(s) if !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') => {
            s.clone()
        }
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut spans: Vec<(&'static str, Value)> = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(SpanFields(f)) = span.extensions().get::<SpanFields>() {
                    for (name, value) in &f.values {
                        match spans.iter_mut().find(|(n, _)| n == name) {
                            Some(slot) => slot.1 = value.clone(),
                            None => spans.push((name, value.clone())),
                        }
                    }
                }
            }
        }
        let level = *event.metadata().level();
        let message = fields.message.unwrap_or_default();
        let now = Utc::now();
        match self.format {
            Format::Text => {
                let (name, prefix) = go_level(level);
                if writer.has_ansi_escapes() {
                    write!(writer, "{} {}[{name}]\x1b[0m {prefix}{message}", timestamp(now), colour_of(level))?;
                } else {
                    write!(writer, "{} [{name}] {prefix}{message}", timestamp(now))?;
                }
                for (key, value) in fields.values.iter().chain(spans.iter().filter(|(n, _)| {
                    // An event field of the same name wins (printed once).
                    !fields.values.iter().any(|(e, _)| e == n)
                })) {
                    write!(writer, " {key}={}", text_value(value))?;
                }
                writeln!(writer)
            }
            Format::Json => {
                const RESERVED: [&str; 4] = ["time", "level", "msg", "target"];
                let mut object = Map::new();
                object.insert("time".into(), Value::String(timestamp(now)));
                object.insert("level".into(), Value::String(json_level(level).into()));
                object.insert("msg".into(), Value::String(message));
                for (key, value) in spans.into_iter().chain(fields.values) {
                    let key = if RESERVED.contains(&key) { format!("fields.{key}") } else { key.to_string() };
                    object.insert(key, value);
                }
                object.insert("target".into(), Value::String(event.metadata().target().to_string()));
                writeln!(writer, "{}", Value::Object(object))
            }
        }
    }
}
