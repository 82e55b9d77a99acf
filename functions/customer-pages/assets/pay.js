// The payment page: Stripe.js's own card fields, and the payment the system opened confirmed
// with them in the browser. The card goes to Stripe only; the site learns of the payment from
// Stripe's signed webhook, and the order's page says so once it has.
(function () {
  'use strict';
  const form = document.getElementById('pay-form');
  const button = document.getElementById('pay');
  const error = document.getElementById('pay-error');
  if (!form || typeof Stripe !== 'function') {
    return;
  }
  const stripe = Stripe(form.dataset.key);
  const card = stripe.elements().create('card');
  card.mount('#card');
  form.addEventListener('submit', async function (event) {
    event.preventDefault();
    button.disabled = true;
    error.textContent = '';
    let result;
    try {
      result = await stripe.confirmCardPayment(form.dataset.secret, {
        payment_method: { card: card },
      });
    } catch (e) {
      result = { error: {} };
    }
    if (result.error) {
      // Stripe's own words for a declined card, in the customer's language where it has them.
      error.textContent = result.error.message || form.dataset.refused;
      button.disabled = false;
      return;
    }
    window.location.assign(form.dataset.done);
  });
  button.disabled = false;
})();
