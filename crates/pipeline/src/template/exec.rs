//! Executing a parsed template.

use super::funcs::{self, RegexCache};
use super::parse::{Arg, Command, Node, Pipeline};
use super::value::Value;
use super::{Data, MAX_OUTPUT};
use std::collections::BTreeMap;

/// Most `range` iterations one execution may run.
const MAX_ITERATIONS: usize = 100_000;

/// The current `.`: the label set itself, or a value.
#[derive(Clone)]
enum Dot {
    Labels,
    Value(Value),
}

enum Flow {
    Normal,
    Break,
    Continue,
}

struct State<'a> {
    data: &'a dyn Data,
    cache: &'a RegexCache,
    vars: Vec<(String, Value)>,
    iterations: usize,
}

pub fn run(
    nodes: &[Node],
    data: &dyn Data,
    cache: &RegexCache,
    out: &mut String,
) -> Result<(), String> {
    let mut st = State {
        data,
        cache,
        vars: data.vars(),
        iterations: 0,
    };
    let dot = match data.dot() {
        Some(v) => Dot::Value(v),
        None => Dot::Labels,
    };
    st.list(nodes, &dot, out).map(|_| ())
}

impl State<'_> {
    fn labels_value(&self) -> Value {
        Value::Map(
            self.data
                .labels()
                .into_iter()
                .map(|(k, v)| (k, Value::Str(v)))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    fn dot_value(&self, dot: &Dot) -> Value {
        match dot {
            Dot::Labels => self.labels_value(),
            Dot::Value(v) => v.clone(),
        }
    }

    fn list(&mut self, nodes: &[Node], dot: &Dot, out: &mut String) -> Result<Flow, String> {
        for node in nodes {
            if out.len() > MAX_OUTPUT {
                return Err(format!("output larger than {MAX_OUTPUT} bytes"));
            }
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.vars.is_empty() {
                        v.write_to(out);
                    }
                }
                Node::If {
                    pipe,
                    then,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let cond = self.pipeline(pipe, dot)?;
                    let branch = if cond.truthy() { then } else { otherwise };
                    let flow = self.list(branch, dot, out)?;
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::With {
                    pipe,
                    body,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let v = self.pipeline(pipe, dot)?;
                    let flow = if v.truthy() {
                        self.list(body, &Dot::Value(v), out)?
                    } else {
                        self.list(otherwise, dot, out)?
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range {
                    pipe,
                    body,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    self.range(pipe, body, otherwise, dot, out)?;
                    self.vars.truncate(mark);
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn range(
        &mut self,
        pipe: &Pipeline,
        body: &[Node],
        otherwise: &[Node],
        dot: &Dot,
        out: &mut String,
    ) -> Result<(), String> {
        // The range variables are bound per element, not by the pipeline.
        let bare = Pipeline {
            vars: Vec::new(),
            assign: false,
            cmds: pipe.cmds.clone(),
        };
        let items: Vec<(Value, Value)> = match self.pipeline(&bare, dot)? {
            Value::List(l) => l
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v))
                .collect(),
            Value::Map(m) => m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect(),
            // Capped before collecting: the iteration limit fails it below.
            Value::Int(n) => (0..n.clamp(0, MAX_ITERATIONS as i64 + 1))
                .map(|i| (Value::Int(i), Value::Int(i)))
                .collect(),
            Value::Nil => Vec::new(),
            other => {
                return Err(format!(
                    "range can't iterate over {}",
                    other.to_string_value()
                ));
            }
        };
        if items.is_empty() {
            self.list(otherwise, dot, out)?;
            return Ok(());
        }
        let mark = self.vars.len();
        for (key, elem) in items {
            self.iterations += 1;
            if self.iterations > MAX_ITERATIONS {
                return Err(format!("more than {MAX_ITERATIONS} range iterations"));
            }
            self.vars.truncate(mark);
            match pipe.vars.as_slice() {
                [] => {}
                [v] => self.vars.push((v.clone(), elem.clone())),
                [k, v, ..] => {
                    self.vars.push((k.clone(), key));
                    self.vars.push((v.clone(), elem.clone()));
                }
            }
            match self.list(body, &Dot::Value(elem), out)? {
                Flow::Break => break,
                Flow::Normal | Flow::Continue => {}
            }
        }
        Ok(())
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Dot) -> Result<Value, String> {
        let mut value: Option<Value> = None;
        for cmd in &p.cmds {
            value = Some(self.command(cmd, dot, value)?);
        }
        let value = value.unwrap_or(Value::Nil);
        if p.assign {
            let name = &p.vars[0];
            let slot = self
                .vars
                .iter_mut()
                .rev()
                .find(|(n, _)| n == name)
                .ok_or_else(|| format!("undefined variable: {name}"))?;
            slot.1 = value.clone();
        } else if let Some(name) = p.vars.first() {
            self.vars.push((name.clone(), value.clone()));
        }
        Ok(value)
    }

    fn command(&mut self, cmd: &Command, dot: &Dot, piped: Option<Value>) -> Result<Value, String> {
        if let Arg::Func(name) = &cmd.args[0] {
            let mut args = Vec::with_capacity(cmd.args.len());
            for arg in &cmd.args[1..] {
                args.push(self.arg(arg, dot)?);
            }
            if let Some(v) = piped {
                args.push(v);
            }
            if let Some(result) = self.data.call(name, &args) {
                return result;
            }
            return funcs::call(name, args, self.data, self.cache);
        }
        if cmd.args.len() > 1 || piped.is_some() {
            return Err("can't give argument to non-function".into());
        }
        self.arg(&cmd.args[0], dot)
    }

    fn arg(&mut self, arg: &Arg, dot: &Dot) -> Result<Value, String> {
        match arg {
            Arg::Literal(v) => Ok(v.clone()),
            Arg::Func(name) => funcs::call(name, Vec::new(), self.data, self.cache),
            Arg::Field(path) => {
                let Some((first, rest)) = path.split_first() else {
                    return Ok(self.dot_value(dot));
                };
                let start = match dot {
                    Dot::Labels => Value::Str(self.data.label(first).unwrap_or("").to_string()),
                    Dot::Value(v) => self.field(v, first)?,
                };
                self.fields(start, rest)
            }
            Arg::Var(name, path) => {
                let v = if name == "$" {
                    self.labels_value()
                } else {
                    self.vars
                        .iter()
                        .rev()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| format!("undefined variable: {name}"))?
                };
                self.fields(v, path)
            }
            Arg::Sub(p, path) => {
                let mark = self.vars.len();
                let v = self.pipeline(p, dot)?;
                self.vars.truncate(mark);
                self.fields(v, path)
            }
        }
    }
}

impl State<'_> {
    /// A map's missing key is nil, or the empty string for data that asks
    /// for Go's `missingkey=zero` (Prometheus' alert templates).
    fn field(&self, v: &Value, name: &str) -> Result<Value, String> {
        if self.data.missing_key_is_empty()
            && let Value::Map(m) = v
            && !m.contains_key(name)
        {
            return Ok(Value::Str(String::new()));
        }
        field(v, name)
    }

    fn fields(&self, mut v: Value, path: &[String]) -> Result<Value, String> {
        for name in path {
            v = self.field(&v, name)?;
        }
        Ok(v)
    }
}

fn field(v: &Value, name: &str) -> Result<Value, String> {
    match v {
        Value::Map(m) => Ok(m.get(name).cloned().unwrap_or(Value::Nil)),
        Value::Nil => Err(format!("nil pointer evaluating .{name}")),
        other => Err(format!(
            "can't evaluate field {name} in type {}",
            other.type_name()
        )),
    }
}
