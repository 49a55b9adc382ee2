# Portcullis container image.
#
#   docker build -t portcullis .
#   docker compose up            (see docker-compose.yml: PostgreSQL + Portcullis)
#
# Two stages: "build" compiles TypeScript with the dev dependencies; the runtime stage
# receives only production node_modules, the compiled dist/ and the views.

############################ stage 1: build ############################
FROM node:24-bookworm-slim AS build

# argon2 ships N-API prebuilds for linux-x64/arm64 (glibc), loaded by node-gyp-build; the
# toolchain is only a fallback for platforms without a prebuild, and never reaches the
# runtime image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Why `npm ci --ignore-scripts` and then explicit steps, rather than a plain `npm ci`:
#  - the root package's `prepare` script runs `npm run build`, which would fail here
#    (the sources are not copied yet: copying only the manifests first keeps the
#    dependency layer cached across source changes);
#  - the `node` devDependency's preinstall downloads a second Node binary (~120 MB) that
#    the image does not need: it has its own node 24;
#  - the remaining install scripts belong to dev-only tools not used by the build (swc,
#    esbuild, unrs-resolver, @parcel/watcher: jest/tsx).
# The one production dependency with an install script, argon2, is rebuilt explicitly.
# The `node` devDependency is then removed with its .bin/node link (its preinstall was
# skipped, so the link dangles) so that every script runs the image's /usr/local/bin/node;
# `npm prune --omit=dev` below would drop it anyway. Loading argon2 fails the build here,
# rather than at the first sign-in, if the native binding is unusable.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/node node_modules/.bin/node \
 && npm rebuild argon2 \
 && node -e "require('argon2')"

COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY migrations ./migrations
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

############################ stage 2: runtime ############################
FROM node:24-bookworm-slim

ENV NODE_ENV=production HOST=0.0.0.0

WORKDIR /app

# Application files stay owned by root (read-only to the service user). data/ is writable
# for evaluation runs only: NODE_ENV=production requires DATABASE_URL and MASTER_KEY, so a
# production container writes nothing to its filesystem.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY views ./views
RUN mkdir -p /app/data && chown node:node /app/data

USER node

# 3000: public OAuth/OIDC endpoints; 3001: admin API (publish it on a private interface only)
EXPOSE 3000 3001

# /healthz answers without touching the database (process liveness); /readyz checks it.
# Plain HTTP on 127.0.0.1: assumes TLS terminates at a proxy in front of the container.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# node is PID 1 and handles SIGTERM itself (drains connections, closes the database).
# glibc keeps a malloc arena per thread: argon2id's 19 MiB per hash would stay resident in
# each of libuv's threads. Two arenas keep RSS down (see README, Performance).
ENV MALLOC_ARENA_MAX=2
CMD ["node", "--enable-source-maps", "--max-semi-space-size=8", "--max-old-space-size=256", "dist/src/main.js"]
