// Config for Prisma Studio, run by the 7.x CLI (its Studio reads the database with plain SQL and
// needs no engine binary; the 6.19 CLI's Studio would download one). See README, "Development".
export default {
  datasource: {
    url: process.env.DATABASE_URL ?? 'postgresql://postgres:postgres@127.0.0.1:5432/kling_tracker',
  },
};
