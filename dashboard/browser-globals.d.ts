// What the dashboard's pages find in the browser besides the DOM: chart.js, loaded by the page
// shell as a classic script. Only `npm run build`'s check of dashboard/public reads this.
interface Window {
  Chart: any;
}
