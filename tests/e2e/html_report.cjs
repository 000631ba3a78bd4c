// Opens a procforest report page in headless Chromium (playwright-core) and prints what
// the test checks as one JSON object: console errors, requests beyond the file itself,
// the anomalies table before and after sorting, the histogram and the nights.
// Usage: node html_report.cjs PLAYWRIGHT_CORE CHROMIUM PAGE SCREENSHOT
"use strict";
const [, , playwrightCore, chromiumPath, pagePath, screenshot] = process.argv;
const { chromium } = require(playwrightCore);

const cells = (page) =>
  page.$$eval("#anomalies tbody tr", (rows) =>
    rows.map((row) => Array.from(row.cells).slice(0, 7).map((cell) => cell.dataset.v)));

(async () => {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  const requests = [];
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("requestfailed", (r) => errors.push(`failed: ${r.url()}`));
  page.on("request", (r) => { if (!r.url().startsWith("file://")) requests.push(r.url()); });
  await page.goto(`file://${pagePath}`, { waitUntil: "load" });
  const rows = await cells(page);
  await page.click("#anomalies thead th:nth-child(7)");
  const byScoreDescending = await cells(page);
  await page.click("#anomalies thead th:nth-child(2)");
  const byComputer = await cells(page);
  const histogram = await page.$$eval("#score-histogram rect.bar", (bars) => bars.map((b) => Number(b.dataset.groups)));
  const histogramShown = await page.isVisible("#score-histogram");
  const threshold = await page.$eval("#score-histogram line.threshold", (l) => Number(l.dataset.offset));
  const nights = await page.$$eval("#nights rect.bar", (bars) => bars.map((b) => [b.dataset.night, Number(b.dataset.anomalies)]));
  await page.click("#anomalies tbody tr:first-child details summary");
  const linesShown = await page.isVisible("#anomalies tbody tr:first-child details code");
  await page.screenshot({ path: screenshot, fullPage: true });
  await browser.close();
  console.log(JSON.stringify({ errors, requests, rows, byScoreDescending, byComputer, histogram,
    histogramShown, threshold, nights, linesShown }));
})().catch((e) => { console.error(e); process.exit(1); });
