#!/usr/bin/env bash
# Installs the second AWS emulator engines the adapters' tests also run on
# (docs/local-aws-engines.md) into .engines/; idempotent and quick when they are there.
#   - ElasticMQ (SQS, Apache-2.0, Scala): the jars pinned in scripts/engines/elasticmq.lock,
#     fetched by Maven and checked against their SHA-256. Needs a JRE to run
#     (Debian default-jre-headless); without `java` it is skipped, and the tests say so.
#   - dynalite (DynamoDB, Apache-2.0, Node): scripts/engines/package*.json, `npm ci`.
#     Install scripts are not run: its LevelDB binding ships prebuilt, and the tests use
#     its in-memory store anyway.
# `--relock` re-resolves ElasticMQ's jars with Maven (mvn) and rewrites the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."
engines=.engines
lock=scripts/engines/elasticmq.lock

if [ "${1:-}" = "--relock" ]; then
  version=$(sed -n 's/^org\.elasticmq:elasticmq-server_2\.13:\([^ ]*\) .*/\1/p' "$lock")
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>local.metalplane</groupId><artifactId>engines</artifactId><version>0</version>
  <packaging>pom</packaging><dependencies><dependency><groupId>org.elasticmq</groupId>
  <artifactId>elasticmq-server_2.13</artifactId><version>${ELASTICMQ_VERSION:-$version}</version>
  </dependency></dependencies></project>
POM
  (cd "$work" && mvn -q -B dependency:list -DoutputFile=deps.txt -DincludeScope=runtime &&
    mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib)
  {
    echo "# ElasticMQ ${ELASTICMQ_VERSION:-$version} (Apache-2.0) and its runtime dependencies, from Maven Central:"
    echo "# group:artifact:version sha256 of the jar. Regenerate: bash scripts/setup-engines.sh --relock"
    grep -E ':jar:' "$work/deps.txt" | sed 's/^ *//; s/ --.*//' | sort |
      while IFS=: read -r group artifact _ ver _; do
        echo "$group:$artifact:$ver $(sha256sum "$work/lib/$artifact-$ver.jar" | cut -d' ' -f1)"
      done
  } >"$lock"
  echo "metalplane: rewrote $lock" >&2
fi

mkdir -p "$engines"

# --- ElasticMQ ---------------------------------------------------------------------------
# Maven fetches the jars (from the repository it is configured with); each is then checked
# against the SHA-256 the lock pins, so a changed artifact stops the install.
stamp=$(sha256sum "$lock" | cut -d' ' -f1)
if [ "$(cat "$engines/elasticmq/.lock-sha256" 2>/dev/null)" != "$stamp" ]; then
  version=$(sed -n 's/^org\.elasticmq:elasticmq-server_2\.13:\([^ ]*\) .*/\1/p' "$lock")
  work=$(mktemp -d)
  cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>local.metalplane</groupId><artifactId>engines</artifactId><version>0</version>
  <packaging>pom</packaging><dependencies><dependency><groupId>org.elasticmq</groupId>
  <artifactId>elasticmq-server_2.13</artifactId><version>$version</version>
  </dependency></dependencies></project>
POM
  (cd "$work" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=lib)
  rm -rf "$engines/elasticmq" && mkdir -p "$engines/elasticmq/lib"
  sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$lock" | while read -r coordinates sha; do
    IFS=: read -r _ artifact version <<<"$coordinates"
    jar="$artifact-$version.jar"
    echo "$sha  $work/lib/$jar" | sha256sum -c --quiet -
    cp "$work/lib/$jar" "$engines/elasticmq/lib/$jar"
  done
  rm -rf "$work"
  echo "$stamp" >"$engines/elasticmq/.lock-sha256"
  echo "metalplane: ElasticMQ installed in $engines/elasticmq" >&2
fi
command -v java >/dev/null ||
  echo "metalplane: no java: the SQS tests on ElasticMQ will be skipped (apt-get install default-jre-headless)" >&2

# --- dynalite ----------------------------------------------------------------------------
stamp=$(sha256sum scripts/engines/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$engines/dynalite/.lock-sha256" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$engines/dynalite" && mkdir -p "$engines/dynalite"
  cp scripts/engines/package.json scripts/engines/package-lock.json "$engines/dynalite/"
  (cd "$engines/dynalite" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$stamp" >"$engines/dynalite/.lock-sha256"
  echo "metalplane: dynalite installed in $engines/dynalite" >&2
fi
