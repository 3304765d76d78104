# questa: one image for the operator and every function (augment, rollout, learn, evaluate).
# The TypeScript sources run through tsx (a runtime dependency), so there is no build step.
#   docker build -t questa:dev .
#   docker run --rm questa:dev --help
# The pod's command picks the role, e.g. `questa function rollout` or `questa operator`.
# Where no registry is reachable (the e2e test), scripts/build-image.ts lays out the same image from
# Debian and npm packages, reading this file's final stage; test/e2e/image.test.ts compares the two.

# Node 24 (LTS) on Debian bookworm, pinned by digest: a rebuild gets the same base, and a changed
# upstream tag cannot slip in. Update both together (the tag is for people, the digest for docker).
ARG NODE_IMAGE=node:24-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# .npmrc holds ignore-scripts=true: no dependency's install script runs (onnxruntime-node's would
# download CUDA libraries from outside the npm registry with no hash check); the variable tells
# onnxruntime-node to skip that download even where an install does not read .npmrc
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
# production dependencies only, exactly the lock file's (integrity hashes checked by npm ci);
# onnxruntime-node ships its CPU binaries inside the npm package
RUN npm ci --omit=dev --no-audit --no-fund \
  && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    ONNXRUNTIME_NODE_INSTALL=skip \
    # the AWS SDK's notice about future Node versions is noise in pod logs
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json .npmrc ./
COPY bin ./bin
COPY scripts/ensure-install.mjs ./scripts/ensure-install.mjs
COPY cli ./cli
COPY functions ./functions
COPY operator ./operator
COPY manifests ./manifests
# the datasets that ship with questa (builtin: in a resource), with their SOURCE.md files
COPY datasets ./datasets
# an unprivileged user, matching the chart's securityContext (runAsNonRoot)
USER node
ENTRYPOINT ["node", "bin/questa.js"]
CMD ["--help"]
