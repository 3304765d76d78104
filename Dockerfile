# questa: one image for the operator and every function (augment, rollout, learn, evaluate).
# The TypeScript sources run through tsx (a runtime dependency), so there is no build step.
#   docker build -t questa:dev .
#   docker run --rm questa:dev --help
# The pod's command picks the role, e.g. `questa serve rollout` or `questa operator`.

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# production dependencies only; onnxruntime-node ships its CPU binaries inside the npm package
RUN npm ci --omit=dev --no-audit --no-fund \
  && npm cache clean --force

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    # the AWS SDK's notice about future Node versions is noise in pod logs
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin ./bin
COPY scripts/ensure-install.mjs ./scripts/ensure-install.mjs
COPY cli ./cli
COPY functions ./functions
COPY operator ./operator
COPY manifests ./manifests
# an unprivileged user, matching the chart's securityContext (runAsNonRoot)
USER node
ENTRYPOINT ["node", "bin/questa.js"]
CMD ["--help"]
