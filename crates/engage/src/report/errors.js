window.onerror=function(m,s,l){var d=document.documentElement.dataset;d.errors=(d.errors?d.errors+" | ":"")+m+(l?" (line "+l+")":"");};
