//! Real-browser tests: headless Chromium driven over WebDriver (chromedriver).

mod driver;
mod sign_in;
