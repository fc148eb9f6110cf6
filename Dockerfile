# One image for every role (api, worker, migrations, simulator); ROLE selects.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY prisma ./prisma
COPY scripts ./scripts
COPY prisma.config.ts ./
COPY console ./console
# postinstall generates the Prisma client offline (see README, "Development") and builds the web
# console into console/dist (vite and preact are dependencies for this reason: NODE_ENV=production
# leaves devDependencies out).
RUN npm ci
COPY tsconfig.json ./
COPY src ./src
COPY workers ./workers
EXPOSE 3000
# node runs the entry directly so SIGTERM reaches it (graceful shutdown) without npm in between.
CMD ["node", "--import", "tsx", "src/main.ts"]
