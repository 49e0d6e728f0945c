variable "GREETING" {
  default = "hello"
}

group "default" {
  targets = ["one", "two", "app"]
}

target "_stages" {
  dockerfile = "Dockerfile"
}

target "one" {
  inherits = ["_stages"]
  target   = "one"
  tags     = ["bake-test/one"]
}

target "two" {
  inherits = ["_stages"]
  target   = "two"
  tags     = ["bake-test/two"]
}

target "app" {
  dockerfile = "app.Dockerfile"
  contexts = {
    base = "target:one"
  }
  args = {
    GREETING = GREETING
  }
  tags = ["bake-test/app"]
}

target "variant" {
  matrix = {
    flavor = ["plain", "fancy"]
  }
  name              = "variant-${flavor}"
  dockerfile-inline = "FROM busybox\nARG FLAVOR\nRUN echo \"$FLAVOR\" > /flavor.txt\n"
  args = {
    FLAVOR = flavor
  }
}
