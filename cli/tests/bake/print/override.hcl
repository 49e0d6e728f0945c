# Laid over docker-bake.json: one more argument for docs, every platform but one.
target "docs" {
  args = {
    EXTRA = "yes"
  }
}
