use super::*;

fn names(text: &str) -> Vec<String> {
    Script::parse(text)
        .commands()
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

fn args(text: &str) -> Vec<Vec<String>> {
    Script::parse(text)
        .commands()
        .iter()
        .map(|c| c.args.clone())
        .collect()
}

#[test]
fn lists_and_pipes() {
    assert_eq!(names("a && b || c; d & e"), ["a", "b", "c", "d", "e"]);
    assert!(Script::parse("a | b").has_pipes());
    assert!(!Script::parse("a || b").has_pipes());
    assert!(Script::parse("a |& b").has_pipes());
    assert_eq!(
        names("apt-get update \\\n && apt-get install -y x"),
        ["apt-get", "apt-get"]
    );
}

#[test]
fn compound_commands() {
    assert_eq!(
        names("(cd /x && make) && { a; b; }"),
        ["cd", "make", "a", "b"]
    );
    assert_eq!(
        names("if [ -f x ]; then a; elif b; then c; else d; fi"),
        ["a", "b", "c", "d"]
    );
    assert_eq!(names("for f in a b; do echo $f; done"), ["echo"]);
    assert_eq!(names("while read l; do x; done < f"), ["read", "x"]);
    assert_eq!(
        names("case \"$A\" in\n a|b) x ;;\n *) y ;;\nesac"),
        ["x", "y"]
    );
    assert_eq!(names("f() { g; }; f"), ["g", "f"]);
    assert_eq!(names("[[ -n $x && $y ]] && z"), ["z"]);
    assert_eq!(names("(( i++ )) && z"), ["z"]);
    assert_eq!(names("((a | b) && c || true)"), ["a", "b", "c", "true"]);
    assert_eq!(names("[ -e /x ] && grep y /x"), ["grep"]);
    assert_eq!(names("Write-Host ('x' -f $y) ; b"), ["Write-Host", "b"]);
}

#[test]
fn substitutions_are_pre_order() {
    assert_eq!(names("echo $(date +%s) `uname`"), ["echo", "date", "uname"]);
    assert_eq!(args("echo \"$(a | b)\" x")[0], ["${VAR}", "x"]);
    assert!(Script::parse("echo $(a | b)").has_pipes());
    assert_eq!(names("diff <(a) <(b)"), ["diff", "a", "b"]);
}

#[test]
fn quoting_and_expansion() {
    assert_eq!(
        args(r#"apt-get install 'a b' "c=$V" d\ e ${X:-y} $((1+2)) $'\t'"#)[0],
        ["install", "a b", "c=${VAR}", "d e", "${VAR}", "${VAR}", "\t"]
    );
    assert_eq!(names("\"apt-get\" x"), ["apt-get"]);
    assert_eq!(names("$CMD x"), Vec::<String>::new());
    assert_eq!(names("A=1 B=2 pip install x"), ["pip"]);
    assert_eq!(names("A=1"), Vec::<String>::new());
    assert_eq!(names("arr=(a b) && x"), ["x"]);
}

#[test]
fn effective_names() {
    assert_eq!(names("command -v x"), ["command"]);
    assert_eq!(names("exec gosu app"), ["gosu"]);
    assert_eq!(names("busybox wget x"), ["wget"]);
}

#[test]
fn comments_redirects_heredocs() {
    assert_eq!(names("a # b && c\nd"), ["a", "d"]);
    assert_eq!(names("a > /dev/null 2>&1 && b &>x"), ["a", "b"]);
    assert_eq!(
        names("cat <<EOF > f\nnot && a command\nEOF\nb"),
        ["cat", "b"]
    );
    assert_eq!(names("cat <<-EOF\n\tx\n\tEOF\nb"), ["cat", "b"]);
}

#[test]
fn syntax_errors_give_no_commands() {
    for bad in ["a 'b", "fi", "a )", "if a; then b", "echo $(a", "a && "] {
        let s = Script::parse(bad);
        assert!(s.commands().is_empty(), "{bad}");
        assert!(s.error().is_some(), "{bad}");
    }
}

#[test]
fn flags_and_pipefail() {
    let s = Script::parse(
        "set -euo pipefail && apt-get -qy install --no-install-recommends=1 -t buster x",
    );
    assert!(s.sets_pipefail());
    let apt = &s.commands()[1];
    assert!(apt.has_flag("q") && apt.has_flag("y") && apt.has_flag("no-install-recommends"));
    assert_eq!(apt.args_no_flags(), ["install", "buster", "x"]);
    assert_eq!(
        apt.drop_flag_values(&["t"]).args_no_flags(),
        ["install", "x"]
    );
    assert!(!Script::parse("set -e").sets_pipefail());
}
