//! `docker-bake.hcl`: variables (their defaults, overridden by
//! environment variables of the same name), `function` blocks and a set
//! of buildx's standard functions, groups, and targets with `matrix`
//! expansion, evaluated with hcl-rs.

use super::model::{Definition, Group, Target, FIELDS, MAX_TARGETS};
use anyhow::{anyhow, bail, Context as _, Result};
use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Block, Body, Expression, Value};
use std::cell::{Cell, RefCell};

/// Most matrix combinations one target block may expand to.
pub(super) const MAX_MATRIX: usize = 256;
/// Most `function` blocks a file may define.
const MAX_FUNCTIONS: usize = 32;
/// Deepest nesting of user function calls.
const MAX_CALL_DEPTH: usize = 32;
/// Most rounds of evaluating targets that read targets not read yet.
const MAX_REFERENCE_PASSES: usize = 64;
/// Most user function calls while reading one file.
const MAX_CALLS: usize = 10_000;

/// A `function` block.
#[derive(Clone)]
struct UserFunc {
    name: String,
    params: Vec<String>,
    variadic: Option<String>,
    result: Expression,
}

thread_local! {
    /// The file's functions, for [`user_fn`] (hcl-rs calls plain `fn`s).
    static FUNCS: RefCell<Vec<UserFunc>> = const { RefCell::new(Vec::new()) };
    /// The file's variables, for evaluating function bodies.
    static VARS: RefCell<Vec<(String, Value)>> = const { RefCell::new(Vec::new()) };
    /// How deep user function calls are nested.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// User function calls so far.
    static CALLS: Cell<usize> = const { Cell::new(0) };
    /// The targets evaluated so far, as `target.NAME.FIELD` reads them.
    static TARGETS: RefCell<hcl::Map<String, Value>> = RefCell::new(hcl::Map::new());
    /// Why user functions stopped (a bound), reported instead of the
    /// chain of calls hcl-rs wraps around it.
    static STOPPED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// An evaluation error's text: the bound a user function hit, else the
/// crate's message on one line.
fn eval_message(e: &dyn std::fmt::Display) -> String {
    STOPPED
        .with(|s| s.borrow_mut().take())
        .unwrap_or_else(|| one_line(&e.to_string()))
}

/// Reads an HCL bake file named `name`.
///
/// # Errors
/// Syntax (`NAME:LINE:COL` as the crate reports it), an expression that
/// does not evaluate, or a block that is not a bake block, each naming
/// the file.
pub(super) fn parse(name: &str, text: &str) -> Result<Definition> {
    let body: Body = hcl::parse(text).map_err(|e| match &e {
        hcl::Error::Parse(p) => anyhow!(
            "{name}:{}:{}: {}",
            p.location().line(),
            p.location().column(),
            one_line(p.message())
        ),
        other => anyhow!("{name}: {}", one_line(&other.to_string())),
    })?;
    let mut funcs = Vec::new();
    // buildx's built-in variables; a file or the environment may set them.
    let mut var_exprs: Vec<(String, Option<Expression>)> = vec![
        (
            "BAKE_LOCAL_PLATFORM".into(),
            Some(Expression::String(kiln_oci::Platform::host().to_string())),
        ),
        (
            "BAKE_CMD_CONTEXT".into(),
            Some(Expression::String("cwd://".into())),
        ),
    ];
    for attr in body.attributes() {
        var_exprs.push((attr.key.to_string(), Some(attr.expr.clone())));
    }
    for block in body.blocks() {
        match block.identifier.as_str() {
            "variable" => {
                let vname = label(block, name)?;
                let default = block
                    .body
                    .attributes()
                    .find(|a| a.key.as_str() == "default")
                    .map(|a| a.expr.clone());
                var_exprs.push((vname, default));
            }
            "function" => funcs.push(user_func(block, name)?),
            "target" | "group" => {}
            other => bail!("{name}: unsupported block type {other:?}"),
        }
    }
    if funcs.len() > MAX_FUNCTIONS {
        bail!("{name}: more than {MAX_FUNCTIONS} functions");
    }
    FUNCS.with(|f| *f.borrow_mut() = funcs);
    VARS.with(|v| v.borrow_mut().clear());
    CALLS.with(|c| c.set(0));
    STOPPED.with(|s| s.borrow_mut().take());
    let vars = variables(name, &var_exprs)?;
    VARS.with(|v| *v.borrow_mut() = vars.clone());
    let ctx = context(&vars);

    let mut def = Definition::default();
    TARGETS.with(|t| t.borrow_mut().clear());
    let mut positions = spots(text).into_iter();
    // Targets may read other targets' fields (`target.NAME.FIELD`): those
    // that fail are tried again while others succeed.
    let mut pending: Vec<(&Block, Spot<'_>)> = Vec::new();
    for block in body.blocks() {
        let (start, attrs) = positions.next().unwrap_or_default();
        let mut spot = Spot {
            file: name,
            what: String::new(),
            start,
            attrs,
        };
        match block.identifier.as_str() {
            "group" => {
                let gname = label(block, name)?;
                spot.what = format!("group {gname:?}");
                let fields = eval_body(&block.body, &ctx, &[], &spot)?;
                let group: Group = serde_json::from_value(serde_json::Value::Object(fields))
                    .map_err(|e| anyhow!("{}: {e}", spot.at(None)))?;
                def.groups.insert(gname, group);
            }
            "target" => {
                let tname = label(block, name)?;
                spot.what = format!("target {tname:?}");
                pending.push((block, spot));
            }
            _ => {}
        }
    }
    let mut passes = 0;
    while !pending.is_empty() {
        passes += 1;
        if passes > MAX_REFERENCE_PASSES {
            bail!("{name}: targets read each other's fields more than {MAX_REFERENCE_PASSES} deep");
        }
        let ctx = context(&vars);
        let before = pending.len();
        let mut failed = Vec::new();
        let mut first_error = None;
        for (block, spot) in pending {
            match target_block(&spot, block, &ctx, &mut def) {
                Ok(done) => TARGETS.with(|t| {
                    let mut t = t.borrow_mut();
                    for (tname, fields) in done {
                        if let Ok(v) =
                            serde_json::from_value::<Value>(serde_json::Value::Object(fields))
                        {
                            t.insert(tname, v);
                        }
                    }
                }),
                Err(e) => {
                    first_error.get_or_insert(e);
                    failed.push((block, spot));
                }
            }
            if def.targets.len() > MAX_TARGETS {
                bail!("{name}: more than {MAX_TARGETS} targets");
            }
        }
        if failed.len() == before {
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        pending = failed;
    }
    Ok(def)
}

/// The first line of a multi-line crate message, with its position.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A block's single label.
fn label(block: &Block, file: &str) -> Result<String> {
    match block.labels.as_slice() {
        [one] => Ok(one.as_str().to_string()),
        _ => bail!(
            "{file}: a {} block takes one name",
            block.identifier.as_str()
        ),
    }
}

/// A `function "NAME" { params = [...] variadic_params = x result = ... }`.
fn user_func(block: &Block, file: &str) -> Result<UserFunc> {
    let name = label(block, file)?;
    let mut f = UserFunc {
        name: name.clone(),
        params: Vec::new(),
        variadic: None,
        result: Expression::Null,
    };
    let ident = |e: &Expression| match e {
        Expression::Variable(v) => Ok(v.as_str().to_string()),
        _ => Err(anyhow!("{file}: function {name:?}: parameters are names")),
    };
    for attr in block.body.attributes() {
        match attr.key.as_str() {
            "params" => match &attr.expr {
                Expression::Array(items) => {
                    f.params = items.iter().map(ident).collect::<Result<_>>()?;
                }
                _ => bail!("{file}: function {name:?}: params is a list of names"),
            },
            "variadic_params" => f.variadic = Some(ident(&attr.expr)?),
            "result" => f.result = attr.expr.clone(),
            other => bail!("{file}: function {name:?}: unknown attribute {other:?}"),
        }
    }
    Ok(f)
}

/// The variables' values: the environment's (typed as the default is),
/// else the default evaluated; defaults may use other variables, so they
/// are evaluated in passes until none is left.
fn variables(file: &str, exprs: &[(String, Option<Expression>)]) -> Result<Vec<(String, Value)>> {
    let mut done: Vec<(String, Value)> = Vec::new();
    let mut pending: Vec<&(String, Option<Expression>)> = Vec::new();
    for item in exprs {
        pending.push(item);
    }
    let mut last_error = None;
    while !pending.is_empty() {
        let ctx = context(&done);
        let before = pending.len();
        let mut left = Vec::new();
        for item in pending {
            let (vname, expr) = item;
            let default = match expr {
                None => Ok(Value::String(String::new())),
                Some(e) => e.evaluate(&ctx),
            };
            match default {
                Ok(default) => {
                    let value = match std::env::var(vname) {
                        Ok(env) => from_env(&env, &default).with_context(|| {
                            format!("{file}: variable {vname:?} from the environment")
                        })?,
                        Err(_) => default,
                    };
                    done.retain(|(n, _)| n != vname);
                    done.push((vname.clone(), value));
                }
                Err(e) => {
                    last_error = Some(format!("{file}: variable {vname:?}: {}", eval_message(&e)));
                    left.push(item);
                }
            }
        }
        if left.len() == before {
            bail!(last_error.unwrap_or_else(|| format!("{file}: variables refer to each other")));
        }
        pending = left;
    }
    Ok(done)
}

/// An environment value as the type of the variable's default, as buildx
/// reads it.
fn from_env(env: &str, default: &Value) -> Result<Value> {
    Ok(match default {
        Value::Bool(_) => Value::Bool(match env {
            "true" | "1" => true,
            "false" | "0" | "" => false,
            _ => bail!("expected true or false, found {env:?}"),
        }),
        Value::Number(_) => {
            let n: f64 = env
                .parse()
                .map_err(|_| anyhow!("expected a number, found {env:?}"))?;
            hcl::Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(|| anyhow!("expected a number, found {env:?}"))?
        }
        _ => Value::String(env.to_string()),
    })
}

/// An evaluation context with `vars`, the standard functions and the
/// file's functions.
fn context(vars: &[(String, Value)]) -> Context<'static> {
    let mut ctx = Context::new();
    for (name, value) in vars {
        ctx.declare_var(name.as_str(), value.clone());
    }
    TARGETS.with(|t| {
        let t = t.borrow();
        if !t.is_empty() {
            ctx.declare_var("target", Value::Object(t.clone()));
        }
    });
    stdlib(&mut ctx);
    FUNCS.with(|funcs| {
        for (i, f) in funcs.borrow().iter().enumerate() {
            let mut def = FuncDef::builder().params(f.params.iter().map(|_| ParamType::Any));
            if f.variadic.is_some() {
                def = def.variadic_param(ParamType::Any);
            }
            if let Some(func) = USER_FNS.get(i) {
                ctx.declare_func(f.name.as_str(), def.build(*func));
            }
        }
    });
    ctx
}

/// Calls the user function in slot `N`: its result expression evaluated
/// with its parameters bound.
fn user_fn<const N: usize>(args: FuncArgs) -> std::result::Result<Value, String> {
    let Some(f) = FUNCS.with(|funcs| funcs.borrow().get(N).cloned()) else {
        return Err("unknown function".into());
    };
    let depth = DEPTH.with(|d| d.get());
    let calls = CALLS.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    let stop = if depth >= MAX_CALL_DEPTH {
        Some(format!(
            "function {}: calls nested deeper than {MAX_CALL_DEPTH}",
            f.name
        ))
    } else if calls > MAX_CALLS {
        Some(format!(
            "function {}: more than {MAX_CALLS} function calls",
            f.name
        ))
    } else {
        None
    };
    if let Some(why) = stop {
        STOPPED.with(|s| s.borrow_mut().get_or_insert_with(|| why.clone()).clone());
        return Err(why);
    }
    let mut vars = VARS.with(|v| v.borrow().clone());
    let values = args.into_values();
    for (i, p) in f.params.iter().enumerate() {
        vars.push((p.clone(), values.get(i).cloned().unwrap_or(Value::Null)));
    }
    if let Some(v) = &f.variadic {
        let rest: Vec<Value> = values.iter().skip(f.params.len()).cloned().collect();
        vars.push((v.clone(), Value::Array(rest)));
    }
    DEPTH.with(|d| d.set(depth + 1));
    let out = f.result.evaluate(&context(&vars));
    DEPTH.with(|d| d.set(depth));
    out.map_err(|e| format!("{}: {e}", f.name))
}

/// One `fn` per function slot (hcl-rs takes plain `fn` pointers).
const USER_FNS: [hcl::eval::Func; MAX_FUNCTIONS] = [
    user_fn::<0>,
    user_fn::<1>,
    user_fn::<2>,
    user_fn::<3>,
    user_fn::<4>,
    user_fn::<5>,
    user_fn::<6>,
    user_fn::<7>,
    user_fn::<8>,
    user_fn::<9>,
    user_fn::<10>,
    user_fn::<11>,
    user_fn::<12>,
    user_fn::<13>,
    user_fn::<14>,
    user_fn::<15>,
    user_fn::<16>,
    user_fn::<17>,
    user_fn::<18>,
    user_fn::<19>,
    user_fn::<20>,
    user_fn::<21>,
    user_fn::<22>,
    user_fn::<23>,
    user_fn::<24>,
    user_fn::<25>,
    user_fn::<26>,
    user_fn::<27>,
    user_fn::<28>,
    user_fn::<29>,
    user_fn::<30>,
    user_fn::<31>,
];

/// Evaluates a block's attributes (except `skip`) to JSON values; an
/// error names the attribute at its position.
fn eval_body(
    body: &Body,
    ctx: &Context<'_>,
    skip: &[&str],
    spot: &Spot<'_>,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut out = serde_json::Map::new();
    for attr in body.attributes() {
        let key = attr.key.as_str();
        if skip.contains(&key) {
            continue;
        }
        let value = attr
            .expr
            .evaluate(ctx)
            .map_err(|e| anyhow!("{}: {key}: {}", spot.at(Some(key)), eval_message(&e)))?;
        out.insert(key.to_string(), serde_json::to_value(&value)?);
    }
    if let Some(b) = body.blocks().next() {
        bail!(
            "{}: unexpected block {:?}",
            spot.at(None),
            b.identifier.as_str()
        );
    }
    Ok(out)
}

/// Where a block is, for errors: `FILE:LINE:COL: target "NAME"`, at the
/// block or at one of its attributes (positions from hcl-edit's spans).
struct Spot<'a> {
    file: &'a str,
    what: String,
    start: Option<(usize, usize)>,
    attrs: std::collections::BTreeMap<String, (usize, usize)>,
}

impl Spot<'_> {
    /// The prefix of an error at attribute `key` (else at the block).
    fn at(&self, key: Option<&str>) -> String {
        match key.and_then(|k| self.attrs.get(k)).or(self.start.as_ref()) {
            Some((line, col)) => format!("{}:{line}:{col}: {}", self.file, self.what),
            None => format!("{}: {}", self.file, self.what),
        }
    }
}

/// A block's position and its attributes' (line, column).
type BlockSpots = (
    Option<(usize, usize)>,
    std::collections::BTreeMap<String, (usize, usize)>,
);

/// The positions of the top-level blocks of `text` and of their
/// attributes, in order (empty when hcl-edit cannot say).
fn spots(text: &str) -> Vec<BlockSpots> {
    use hcl::edit::Span;
    let Ok(body) = hcl::edit::parser::parse_body(text) else {
        return Vec::new();
    };
    let line_col = |offset: usize| -> (usize, usize) {
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    };
    body.blocks()
        .map(|b| {
            let start = b.span().map(|r| line_col(r.start));
            let attrs = b
                .body
                .attributes()
                .filter_map(|a| {
                    a.span()
                        .map(|r| (a.key.as_str().to_string(), line_col(r.start)))
                })
                .collect();
            (start, attrs)
        })
        .collect()
}

/// A `target` block: one target, or with `matrix` one per combination
/// (named by its `name` expression) and a group of them under the
/// block's name.
fn target_block(
    spot: &Spot<'_>,
    block: &Block,
    ctx: &Context<'_>,
    def: &mut Definition,
) -> Result<Vec<(String, serde_json::Map<String, serde_json::Value>)>> {
    let at = |key: &str| spot.at(Some(key));
    let tname = spot.what.trim_start_matches("target ").trim_matches('"');
    let attr = |key: &str| block.body.attributes().find(|a| a.key.as_str() == key);
    for a in block.body.attributes() {
        let key = a.key.as_str();
        if !FIELDS.contains(&key) && !matches!(key, "name" | "matrix") {
            bail!("{}: unknown attribute {key:?}", at(key));
        }
    }
    let Some(matrix) = attr("matrix") else {
        let fields = eval_body(&block.body, ctx, &["name"], spot)?;
        let t = Target::from_json(fields.clone()).map_err(|e| anyhow!("{}: {e}", spot.at(None)))?;
        def.targets.entry(tname.to_string()).or_default().merge(&t);
        return Ok(vec![(tname.to_string(), fields)]);
    };
    let matrix = matrix
        .expr
        .evaluate(ctx)
        .map_err(|e| anyhow!("{}: matrix: {}", at("matrix"), eval_message(&e)))?;
    let Value::Object(axes) = matrix else {
        bail!("{}: matrix must be a map of lists", at("matrix"));
    };
    let mut combos: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for (axis, values) in axes {
        let Value::Array(values) = values else {
            bail!("{}: matrix.{axis} must be a list", at("matrix"));
        };
        let mut next = Vec::new();
        for combo in &combos {
            for v in &values {
                let mut c = combo.clone();
                c.push((axis.clone(), v.clone()));
                next.push(c);
                if next.len() > MAX_MATRIX {
                    bail!(
                        "{}: the matrix makes more than {MAX_MATRIX} combinations",
                        at("matrix")
                    );
                }
            }
        }
        combos = next;
    }
    let name_expr = attr("name")
        .map(|a| a.expr.clone())
        .ok_or_else(|| anyhow!("{}: a matrix target needs a name expression", spot.at(None)))?;
    let mut members = Vec::new();
    let mut done = Vec::new();
    for combo in combos {
        let mut vars = VARS.with(|v| v.borrow().clone());
        vars.extend(combo.iter().cloned());
        let mctx = context(&vars);
        let name = match name_expr.evaluate(&mctx) {
            Ok(Value::String(s)) => s,
            Ok(other) => bail!("{}: name must be a string, found {other}", at("name")),
            Err(e) => bail!("{}: name: {}", at("name"), eval_message(&e)),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            bail!(
                "{}: invalid target name {name:?} from the matrix",
                at("name")
            );
        }
        let mspot = Spot {
            file: spot.file,
            what: format!("{} ({name})", spot.what),
            start: spot.start,
            attrs: spot.attrs.clone(),
        };
        let fields = eval_body(&block.body, &mctx, &["name", "matrix"], &mspot)?;
        let t =
            Target::from_json(fields.clone()).map_err(|e| anyhow!("{}: {e}", mspot.at(None)))?;
        def.targets.entry(name.clone()).or_default().merge(&t);
        done.push((name.clone(), fields));
        members.push(name);
    }
    def.groups.insert(
        tname.to_string(),
        Group {
            description: None,
            targets: members,
        },
    );
    Ok(done)
}

/// Declares the buildx standard functions kiln supports.
fn stdlib(ctx: &mut Context<'_>) {
    use ParamType::{Any, Array, Number, String as Str};
    let f = |params: Vec<ParamType>, func: hcl::eval::Func| FuncDef::new(func, params);
    ctx.declare_func(
        "upper",
        f(vec![Str], |a| Ok(s(&a, 0)?.to_uppercase().into())),
    );
    ctx.declare_func(
        "lower",
        f(vec![Str], |a| Ok(s(&a, 0)?.to_lowercase().into())),
    );
    ctx.declare_func(
        "trimspace",
        f(vec![Str], |a| Ok(s(&a, 0)?.trim().to_string().into())),
    );
    ctx.declare_func(
        "trimprefix",
        f(vec![Str, Str], |a| {
            let (x, p) = (s(&a, 0)?, s(&a, 1)?);
            Ok(x.strip_prefix(p.as_str()).unwrap_or(&x).to_string().into())
        }),
    );
    ctx.declare_func(
        "trimsuffix",
        f(vec![Str, Str], |a| {
            let (x, p) = (s(&a, 0)?, s(&a, 1)?);
            Ok(x.strip_suffix(p.as_str()).unwrap_or(&x).to_string().into())
        }),
    );
    ctx.declare_func(
        "replace",
        f(vec![Str, Str, Str], |a| {
            Ok(s(&a, 0)?.replace(s(&a, 1)?.as_str(), &s(&a, 2)?).into())
        }),
    );
    ctx.declare_func(
        "split",
        f(vec![Str, Str], |a| {
            let (sep, x) = (s(&a, 0)?, s(&a, 1)?);
            Ok(Value::Array(
                x.split(sep.as_str())
                    .map(|p| Value::from(p.to_string()))
                    .collect(),
            ))
        }),
    );
    ctx.declare_func(
        "join",
        f(vec![Str, Array(Box::new(Any))], |a| {
            let sep = s(&a, 0)?;
            let items = list(&a, 1)?;
            let parts: Vec<String> = items.iter().map(text).collect();
            Ok(parts.join(&sep).into())
        }),
    );
    ctx.declare_func(
        "length",
        f(vec![Any], |a| {
            let v = a.clone().into_values();
            let n = match v.first() {
                Some(Value::Array(x)) => x.len(),
                Some(Value::Object(x)) => x.len(),
                Some(Value::String(x)) => x.chars().count(),
                _ => return Err("length: expected a list, map or string".into()),
            };
            Ok(Value::from(n as u64))
        }),
    );
    ctx.declare_func(
        "contains",
        f(vec![Array(Box::new(Any)), Any], |a| {
            let v = a.into_values();
            match (v.first(), v.get(1)) {
                (Some(Value::Array(x)), Some(item)) => Ok(Value::Bool(x.contains(item))),
                _ => Err("contains: expected a list and a value".into()),
            }
        }),
    );
    ctx.declare_func(
        "concat",
        FuncDef::builder()
            .variadic_param(Array(Box::new(Any)))
            .build(|a| {
                let mut out = Vec::new();
                for v in a.into_values() {
                    if let Value::Array(x) = v {
                        out.extend(x);
                    }
                }
                Ok(Value::Array(out))
            }),
    );
    ctx.declare_func(
        "coalesce",
        FuncDef::builder().variadic_param(Any).build(|a| {
            Ok(a.into_values()
                .into_iter()
                .find(|v| !matches!(v, Value::Null) && *v != Value::from(""))
                .unwrap_or(Value::Null))
        }),
    );
    ctx.declare_func(
        "equal",
        f(vec![Any, Any], |a| {
            let v = a.into_values();
            Ok(Value::Bool(v.first() == v.get(1)))
        }),
    );
    ctx.declare_func(
        "notequal",
        f(vec![Any, Any], |a| {
            let v = a.into_values();
            Ok(Value::Bool(v.first() != v.get(1)))
        }),
    );
    ctx.declare_func(
        "add",
        f(vec![Number, Number], |a| {
            let v = a.into_values();
            match (v.first(), v.get(1)) {
                (Some(Value::Number(x)), Some(Value::Number(y))) => Ok(Value::Number(*x + *y)),
                _ => Err("add: expected two numbers".into()),
            }
        }),
    );
    ctx.declare_func(
        "substr",
        f(vec![Str, Number, Number], |a| {
            let v = a.into_values();
            let (Some(Value::String(x)), Some(Value::Number(off)), Some(Value::Number(len))) =
                (v.first(), v.get(1), v.get(2))
            else {
                return Err("substr: expected a string, an offset and a length".into());
            };
            let off = off.as_u64().unwrap_or(0) as usize;
            let taken: String = match len.as_i64() {
                Some(n) if n >= 0 => x.chars().skip(off).take(n as usize).collect(),
                _ => x.chars().skip(off).collect(),
            };
            Ok(taken.into())
        }),
    );
}

/// Positional argument `i` as a string.
fn s(args: &FuncArgs, i: usize) -> std::result::Result<String, String> {
    match args.positional_args().nth(i) {
        Some(Value::String(x)) => Ok(x.clone()),
        Some(other) => Ok(text(other)),
        None => Err(format!("missing argument {}", i + 1)),
    }
}

/// Positional argument `i` as a list.
fn list(args: &FuncArgs, i: usize) -> std::result::Result<Vec<Value>, String> {
    match args.positional_args().nth(i) {
        Some(Value::Array(x)) => Ok(x.clone()),
        _ => Err(format!("argument {} must be a list", i + 1)),
    }
}

/// A value as text (strings without quotes).
fn text(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

/// The variables of a JSON bake file (`{"variable": {"NAME": {"default":
/// V}}}`, overridden by the environment as in HCL), ready for
/// [`interpolate`].
///
/// # Errors
/// A variable that is not an object with an optional `default`.
pub(super) fn json_variables(
    file: &str,
    declared: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<(String, Value)>> {
    let mut exprs = Vec::new();
    for (name, v) in declared {
        let default = match v {
            serde_json::Value::Object(o) => o.get("default").cloned(),
            serde_json::Value::Null => None,
            _ => bail!("{file}: variable {name:?}: expected an object"),
        };
        let default = default
            .map(|d| hcl::to_expression(&d).map_err(|e| anyhow!("{file}: variable {name:?}: {e}")))
            .transpose()?;
        exprs.push((name.clone(), default));
    }
    FUNCS.with(|f| f.borrow_mut().clear());
    let vars = variables(file, &exprs)?;
    VARS.with(|v| *v.borrow_mut() = vars.clone());
    Ok(vars)
}

/// Evaluates every string of `value` that holds `${` as an HCL template
/// with `vars` (what buildx does to JSON bake files).
///
/// # Errors
/// A template that does not parse or evaluate.
pub(super) fn interpolate(
    value: serde_json::Value,
    vars: &[(String, Value)],
) -> Result<serde_json::Value> {
    use std::str::FromStr;
    let ctx = context(vars);
    let one = |s: String| -> Result<serde_json::Value> {
        if !s.contains("${") {
            return Ok(serde_json::Value::String(s));
        }
        let template = hcl::Template::from_str(&s)
            .map_err(|e| anyhow!("{s:?}: {}", one_line(&e.to_string())))?;
        let out = template
            .evaluate(&ctx)
            .map_err(|e| anyhow!("{s:?}: {}", one_line(&e.to_string())))?;
        Ok(serde_json::Value::String(out))
    };
    // serde_json caps nesting at 128 when parsing; targets are two deep.
    Ok(match value {
        serde_json::Value::String(s) => one(s)?,
        serde_json::Value::Array(a) => serde_json::Value::Array(
            a.into_iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => one(s),
                    other => Ok(other),
                })
                .collect::<Result<_>>()?,
        ),
        serde_json::Value::Object(o) => serde_json::Value::Object(
            o.into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => one(s).map(|v| (k, v)),
                    other => Ok((k, other)),
                })
                .collect::<Result<_>>()?,
        ),
        other => other,
    })
}
