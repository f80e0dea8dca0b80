//! A Go `text/template` engine for `line_format` and `label_format`, with
//! Loki's functions.
//!
//! The data (`.`) is the line's label set: `{{.status}}` is a label's
//! value, the empty string when the label is missing (Loki's choice, where
//! Go would print `<no value>`). `__line__` and `__timestamp__` give the
//! line and its time. The language covered is described in [`parse`], the
//! functions in [`funcs`]; printing follows Go's `fmt` (see [`value`]).
//!
//! A template is parsed once ([`Template::parse`], errors there are query
//! errors) and executed per line ([`Template::execute`], errors there
//! become `__error__="TemplateFormatErr"` in the caller). Execution is
//! bounded: output size and `range` iterations are capped, so no template
//! can exhaust memory or time on hostile input.

mod exec;
pub mod funcs;
pub mod parse;
pub mod time;
pub mod value;

use parse::{Arg, Node, Pipeline};

/// What a template reads: the labels, the line and its timestamp.
pub trait Data {
    /// A label's value.
    fn label(&self, name: &str) -> Option<&str>;
    /// Every label, for `{{ . }}` and `{{ range $k, $v := . }}`.
    fn labels(&self) -> Vec<(String, String)>;
    fn line(&self) -> &str;
    /// Nanoseconds since the Unix epoch.
    fn timestamp(&self) -> i64;
    /// What `.` is when execution starts; `None`: the labels (Loki's
    /// templates). Other template dialects (the ruler's, Prometheus'
    /// alert templates) give a map here.
    fn dot(&self) -> Option<value::Value> {
        None
    }
    /// Variables defined before execution starts (`$labels`, `$value`).
    fn vars(&self) -> Vec<(String, value::Value)> {
        Vec::new()
    }
    /// Whether a missing map key reads as `""` (Go's `missingkey=zero`)
    /// rather than nil.
    fn missing_key_is_empty(&self) -> bool {
        false
    }
    /// A function added by the caller (named in [`Template::parse_with`]);
    /// `None` when `name` is not one of them.
    fn call(&self, _name: &str, _args: &[value::Value]) -> Option<Result<value::Value, String>> {
        None
    }
}

/// The largest output one execution may produce.
pub const MAX_OUTPUT: usize = 1 << 20;

#[derive(Debug)]
pub struct Template {
    nodes: Vec<Node>,
    /// Whether the template uses `__line__` (so callers can tell whether a
    /// `label_format` depends on the line).
    uses_line: bool,
    cache: funcs::RegexCache,
}

impl Template {
    /// Parses a template; errors say what is wrong and where.
    pub fn parse(src: &str) -> Result<Template, String> {
        Template::parse_with(src, &[])
    }

    /// Parses a template that may also call the functions named in
    /// `extra`, which the [`Data`] it runs on provides ([`Data::call`]).
    pub fn parse_with(src: &str, extra: &[&str]) -> Result<Template, String> {
        let nodes = parse::parse(src).map_err(|e| format!("template: {e}"))?;
        let mut uses_line = false;
        check_funcs(&nodes, extra, &mut uses_line)?;
        Ok(Template {
            nodes,
            uses_line,
            cache: funcs::RegexCache::default(),
        })
    }

    pub fn uses_line(&self) -> bool {
        self.uses_line
    }

    /// Appends the output to `out`; on error `out` may hold partial
    /// output.
    pub fn execute(&self, data: &dyn Data, out: &mut String) -> Result<(), String> {
        exec::run(&self.nodes, data, &self.cache, out).map_err(|e| format!("template: {e}"))
    }
}

fn check_funcs(nodes: &[Node], extra: &[&str], uses_line: &mut bool) -> Result<(), String> {
    fn pipe(p: &Pipeline, extra: &[&str], uses_line: &mut bool) -> Result<(), String> {
        for cmd in &p.cmds {
            for arg in &cmd.args {
                match arg {
                    Arg::Func(name) => {
                        if !funcs::NAMES.contains(&name.as_str()) && !extra.contains(&name.as_str())
                        {
                            return Err(format!("template: function {name:?} not defined"));
                        }
                        *uses_line |= name == "__line__";
                    }
                    Arg::Sub(inner, _) => pipe(inner, extra, uses_line)?,
                    _ => {}
                }
            }
        }
        Ok(())
    }
    for node in nodes {
        match node {
            Node::Text(_) | Node::Break | Node::Continue => {}
            Node::Action(p) => pipe(p, extra, uses_line)?,
            Node::If {
                pipe: p,
                then: a,
                otherwise: b,
            }
            | Node::Range {
                pipe: p,
                body: a,
                otherwise: b,
            }
            | Node::With {
                pipe: p,
                body: a,
                otherwise: b,
            } => {
                pipe(p, extra, uses_line)?;
                check_funcs(a, extra, uses_line)?;
                check_funcs(b, extra, uses_line)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
