# Production image: the server alone; point it at MongoDB with MONGODB_URI (docker-compose.yml,
# deploy/helm/sync-server). Checked by hadolint in test/deploy.e2e-spec.ts.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json nest-cli.json ./
COPY src ./src
COPY libs ./libs
COPY public ./public
COPY scripts ./scripts
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
# owned by root, read-only for the server: the container runs with a read-only root filesystem
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/package.json ./package.json
COPY config ./config
# the image's "node" user, by number so that Kubernetes' runAsNonRoot can verify it
USER 1000:1000
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/ready').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"]
# node as PID 1 receives SIGTERM itself: it drains its sockets and exits within SHUTDOWN_GRACE_MS
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/main.js"]
