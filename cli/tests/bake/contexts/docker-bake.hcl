# Three targets on two contexts: a, b, and c (context b) reading a.
group "default" {
  targets = ["a", "b", "c"]
}

target "a" {
  context = "a"
}

target "b" {
  context = "b"
}

target "c" {
  context    = "b"
  dockerfile = "use.Dockerfile"
  contexts = {
    lib = "target:a"
  }
}
