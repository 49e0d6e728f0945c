# A web shop: two images from one repository, sharing settings.
variable "REGISTRY" {
  default = "registry.example.com/shop"
}

variable "RELEASE" {
  default = "dev"
}

variable "DEBUG" {
  default = false
}

function "image" {
  params = [name]
  result = "${REGISTRY}/${name}:${RELEASE}"
}

group "default" {
  targets = ["storefront", "worker"]
}

# Reads another target's fields (this one is defined later).
target "storefront-debug" {
  context    = target.storefront.context
  dockerfile = target.storefront.dockerfile
  tags       = ["${target.storefront.tags[0]}-debug"]
}

target "_base" {
  args = {
    NODE_MAJOR = 22
    DEBUG      = DEBUG
  }
  labels = {
    "org.opencontainers.image.vendor" = "Example Shop"
  }
  platforms = ["linux/amd64"]
}

target "storefront" {
  inherits   = ["_base"]
  context    = "storefront"
  dockerfile = "web.Dockerfile"
  tags       = [image("storefront"), "${REGISTRY}/storefront:${upper(RELEASE)}"]
  cache-from = ["type=registry,ref=${REGISTRY}/cache:storefront"]
  cache-to   = ["type=inline"]
}

target "worker" {
  inherits  = ["_base"]
  context   = "worker"
  target    = "runtime"
  tags      = [image("worker")]
  contexts  = {
    assets = "target:storefront"
  }
  args = {
    QUEUE = join(",", ["orders", "mail"])
  }
  secret  = ["id=npmrc,src=${REGISTRY}.npmrc"]
  no-cache = true
}

target "lint" {
  matrix = {
    tool = ["hadolint", "shellcheck"]
  }
  name       = "lint-${tool}"
  dockerfile = "lint.Dockerfile"
  args = {
    TOOL = tool
  }
}
