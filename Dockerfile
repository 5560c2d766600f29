# syntax=docker/dockerfile:1
# One image for every dc-operator process, chosen by subcommand:
#   controller | webhook | sidecar | keyserver      (docker run IMAGE controller --help)
# The webhook injects the sidecar as `dc-operator sidecar ...`, so `dc-operator` is on PATH too.
# test/unit/packaging-dockerfile.test.ts checks that what this file names exists and runs.
ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: compile TypeScript (dev dependencies needed) ---------------------------------------
FROM ${NODE_IMAGE} AS build
# gcc for the native addons of src/tls (record AEAD, handshake crypto); the image's Node brings its headers.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY scripts/build-native.mjs ./scripts/
RUN npx tsc -p tsconfig.json && node scripts/build-native.mjs --require

# --- deps: production dependencies only --------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime: slim Node 24, non-root, nothing but the compiled code and its dependencies -------
FROM ${NODE_IMAGE} AS runtime
# The commit `--version` reports (docker build --build-arg COMMIT=$(git rev-parse HEAD) ...).
ARG COMMIT=unknown
# NODE_COMPILE_CACHE: Node's module compile cache (V8's code cache of every module), written below
# at build time and read-only at run time (bench/results/sidecar-perf.md, section 8).
ENV NODE_ENV=production DC_OPERATOR_COMMIT=${COMMIT} NODE_COMPILE_CACHE=/app/.cache/node-compile
WORKDIR /app
# package.json carries "type": "module": dist/**/*.js are ES modules.
COPY --from=deps /src/package.json ./package.json
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
RUN chmod 0755 dist/src/cli/dc-operator.js dist/src/cli/dcctl.js \
 && ln -s /app/dist/src/cli/dc-operator.js /usr/local/bin/dc-operator \
 && ln -s /app/dist/src/cli/dcctl.js /usr/local/bin/dcctl \
 && mkdir -p /app/.cache/node-compile && chown 65532:65532 /app/.cache/node-compile
# The compile cache is filled by the uid that reads it: Node keeps one subdirectory per Node
# version, V8 flag set and uid, so a cache written as root would be a miss for 65532. Every
# program's --help imports all of its commands, so all their modules are compiled, and Node
# writes the cache when they exit. (A warm-up adds nothing here: Node serializes a module's code
# right after compiling it, before any of it ran.) Then root makes it read-only, as the injected
# sidecar's root filesystem is, and readable (Node writes its files 0600): a start that cannot use
# it compiles as without it.
USER 65532:65532
RUN node dist/src/cli/dc-operator.js --help >/dev/null && node dist/src/cli/dcctl.js --help >/dev/null
USER root
RUN chown -R root:root /app/.cache/node-compile && chmod -R a=rX /app/.cache/node-compile
# 65532: the conventional "nonroot" uid (distroless), the same the injected sidecar runs as.
USER 65532:65532
ENTRYPOINT ["node", "dist/src/cli/dc-operator.js"]
CMD ["--help"]
